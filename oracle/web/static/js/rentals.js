// My rentals: the connected account's rentals as renter and what it can withdraw.
import { get, meta } from "./api.js";
import { liveBoxes } from "./live.js";
import { h, num, section, table } from "./dom.js";
import { actionButton } from "./actions.js";
import * as wallet from "./wallet.js";

export function rentalRows(caption, items, testid, extra = []) {
  return table({
    caption, testid, empty: "none",
    columns: [
      { label: "Rental", cell: (r) => h("a", { href: `#/rental/${r.rental_id}` }, `Rental ${r.rental_id}`) },
      { label: "Status", cell: (r) => r.status_label },
      { label: "GPUs", cell: (r) => `${r.gpu_count} × ${r.gpu_model}` },
      { label: "Budget", cell: (r) => num(r, "budget") },
      { label: "Paid", cell: (r) => num(r, "paid") },
      { label: "Left", cell: (r) => num(r, "remaining") },
      ...extra,
    ],
    rows: items,
  });
}

export function withdrawables(items, done) {
  return table({
    caption: "Withdrawable now", testid: "withdrawable", empty: "nothing to withdraw",
    columns: [
      { label: "Token", cell: (w) => w.token.symbol },
      { label: "Amount", cell: (w) => num(w, "amount") },
      { label: "Action", cell: (w) => (BigInt(w.amount) > 0n
        ? actionButton({ label: `Withdraw ${w.token.symbol}`, action: "withdraw", body: { token: w.token.address },
          done, testid: `withdraw-${w.token.symbol}` })
        : "–") },
    ],
    rows: items,
  });
}

export async function render(main) {
  await meta();
  main.append(h("h1", {}, "My rentals"));
  const account = wallet.current();
  if (!account) {
    main.append(h("p", {}, "Connect your wallet to see your rentals and refunds."));
    return null;
  }
  const url = `/accounts/${account}`;
  const info = await get(url);
  const live = liveBoxes(["rentals", "withdraw"], url, (data, again) => ({
    rentals: rentalRows(`Rentals of ${account}`, data.rentals_as_renter, "my-rentals",
      [{ label: "Runs out", cell: (r) => (r.runs_out_in_s !== null && r.runs_out_in_s !== undefined ? num(r, "runs_out_in_s") : "–") }]),
    withdraw: withdrawables(data.withdrawable || [], again),
  }));
  main.append(live.problems,
    section("Rentals", "my-rentals", live.boxes.rentals),
    section("Refunds and earnings", "withdraw", live.boxes.withdraw),
  );
  live.start(info);
  return () => live.stop();
}
