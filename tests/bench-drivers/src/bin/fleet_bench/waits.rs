//! Where the gateways' database sessions spend a run: `pg_stat_activity` sampled every
//! [`EVERY`] on a connection of its own, each busy session counted by what it waits on.
//!
//! Why: `pg_stat_statements` gives a statement's time from start to end, waits
//! included, and cannot say what the wait was. The samples can: a write waiting for
//! another transaction's row lock (`Lock:transactionid`, the hot tally rows of issue
//! 22), commits queued behind the WAL flush (`LWLock:WALWrite`, `IO:WALSync`), a
//! session inside a transaction waiting for the gateway's next statement
//! (`Client:ClientRead`), or running (on a CPU, or waiting for one).

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Time between two samples.
pub(crate) const EVERY: Duration = Duration::from_millis(25);

/// The busy sessions of the gateways (`application_name` is the store's), by wait.
const BUSY: &str = "SELECT coalesce(wait_event_type || ':' || wait_event, 'running') \
    FROM pg_stat_activity \
    WHERE application_name = 'c2c-gateway' AND state IS DISTINCT FROM 'idle'";

/// What the samples found.
#[derive(Default)]
pub(crate) struct Waits {
    pub(crate) samples: u64,
    /// Busy sessions seen, by wait, over every sample.
    pub(crate) by_wait: BTreeMap<String, u64>,
}

/// Samples `url` (a libpq connection string) until the sender is told `true` or dropped;
/// the task answers what it saw. A sample that fails is skipped (the run goes on).
pub(crate) fn sample(url: String) -> (watch::Sender<bool>, JoinHandle<Waits>) {
    let (stop, mut stopped) = watch::channel(false);
    let task = tokio::spawn(async move {
        let mut waits = Waits::default();
        let (client, conn) = match tokio_postgres::connect(&url, tokio_postgres::NoTls).await {
            Ok(c) => c,
            Err(e) => {
                eprintln!("wait sampling off: {e}");
                return waits;
            }
        };
        let io = tokio::spawn(conn);
        let mut tick = tokio::time::interval(EVERY);
        loop {
            tokio::select! {
                _ = stopped.changed() => break,
                _ = tick.tick() => {}
            }
            let Ok(rows) = client.query(BUSY, &[]).await else {
                continue;
            };
            waits.samples += 1;
            for r in rows {
                *waits.by_wait.entry(r.get::<_, String>(0)).or_default() += 1;
            }
        }
        drop(client);
        io.abort();
        waits
    });
    (stop, task)
}

impl Waits {
    /// The table: per wait, the busy sessions it held on average and its share of them.
    pub(crate) fn print(&self) {
        let seen: u64 = self.by_wait.values().sum();
        println!(
            "\nWhere the gateways' busy database sessions were (pg_stat_activity every {} ms, \
             {} samples, {:.1} busy sessions on average):",
            EVERY.as_millis(),
            self.samples,
            seen as f64 / self.samples.max(1) as f64
        );
        println!("| sessions (average) | share | wait (`running`: on a CPU or waiting for one) |");
        println!("| ---: | ---: | --- |");
        let mut rows: Vec<_> = self.by_wait.iter().collect();
        rows.sort_by(|x, y| y.1.cmp(x.1));
        for (wait, n) in rows {
            println!(
                "| {:.2} | {:.1} % | `{wait}` |",
                *n as f64 / self.samples.max(1) as f64,
                *n as f64 * 100.0 / seen.max(1) as f64
            );
        }
    }
}
