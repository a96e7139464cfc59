from oracle.node.server import main

main()
