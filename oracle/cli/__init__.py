"""The ``gpurent`` command line: a click group in ``main``, one module per subcommand."""
