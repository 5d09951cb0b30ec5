//! `--wallet`: after a round on PostgreSQL, acme's ledger is read from the database
//! and checked: no hold left once the nodes have settled, one charge per call at most,
//! none twice, the balance equal to the top-up minus the charges (zero drift).

use std::time::{Duration, Instant};

use crate::env::Pg;

/// ₹1 crore: far more than any run spends.
pub(crate) const TOP_UP_PAISE: i64 = 1_000_000_000;

/// Waits (60 s at most) for the holds to be settled, then checks the ledger of `db`
/// against `lifecycles` (the round's and the warm-up's).
pub(crate) fn check(pg: &Pg, db: &str, lifecycles: u64) {
    let t0 = Instant::now();
    let holds = loop {
        let n: u64 = pg
            .psql(
                db,
                "SELECT count(*) FROM c2c_wallet_holds WHERE tenant = 'acme'",
            )
            .parse()
            .unwrap_or(u64::MAX);
        if n == 0 || t0.elapsed() > Duration::from_secs(60) {
            break n;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let row = pg.psql(
        db,
        "SELECT count(*), count(DISTINCT call_id), COALESCE(-sum(amount_paise), 0), \
         (SELECT balance_paise FROM c2c_wallets WHERE tenant = 'acme') \
         FROM c2c_wallet_ledger WHERE tenant = 'acme' AND kind = 'call_charge'",
    );
    let f: Vec<i64> = row.split('|').map(|x| x.parse().unwrap_or(-1)).collect();
    let [charges, calls, spent, balance] = f[..] else {
        panic!("wallet check: unexpected row '{row}'");
    };
    let drift = TOP_UP_PAISE - spent - balance;
    let twice = charges - calls;
    println!(
        "  wallet: {charges} call charges for {lifecycles} lifecycles ({twice} charged twice), \
         {spent} paise spent, {holds} holds left, balance {balance} paise, drift {drift} paise"
    );
    assert!(
        charges <= lifecycles as i64 && twice == 0 && holds == 0 && drift == 0,
        "the wallet does not add up"
    );
}
