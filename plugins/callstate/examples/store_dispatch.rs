//! What the gateway pays for holding `Arc<dyn CallStore>` instead of the concrete
//! `SledCallStore`: ns per `get` and per `apply_transition`, through the inherent
//! methods, through the trait on the concrete type (static dispatch) and through
//! `&dyn CallStore`, on a real sled store in a temp dir.
//!
//! `cargo run --release -p c2c-callstate --example store_dispatch`
//! (figures in BENCHMARKS.md, "issue 19: store dispatch").
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark: a failed unwrap ends the run, as it should

use std::error::Error;
use std::future::Future;
use std::hint::black_box;
use std::time::Instant;

use c2c_callstate::{
    new_call_id, CallKnobs, CallRecord, CallStore, CallStoreExt, NewCall, SledCallStore, Transition,
};

const GETS: u32 = 200_000;
const WRITES: u32 = 2_000;

fn call() -> CallRecord {
    let (call_id, room) = new_call_id();
    let new = NewCall {
        call_id,
        room,
        tenant: "acme".into(),
        case_id: "case-1".into(),
        customer_crm_id: "cust-1".into(),
        agent_id: "agent-1".into(),
        customer_number: "9530251797".into(),
        phone_from: "+919999999999".into(),
        trunk_label: "airtel".into(),
    };
    CallRecord::new(new, &CallKnobs::default(), 1_700_000_000_000).0
}

/// A write that changes the version only (no tally or outbox work), so what differs
/// between the paths is the dispatch and the boxing.
fn bump(r: &CallRecord) -> Result<Transition, c2c_callstate::TransitionError> {
    let mut record = r.clone();
    record.version += 1;
    Ok(Transition {
        from: r.phase,
        record,
        effects: Vec::new(),
    })
}

async fn ns_per_op<F, Fut>(what: &str, n: u32, mut op: F) -> Result<(), Box<dyn Error>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), Box<dyn Error>>>,
{
    // Warm-up: caches, the flusher thread, the allocator.
    for _ in 0..n / 10 {
        op().await?;
    }
    let t = Instant::now();
    for _ in 0..n {
        op().await?;
    }
    let ns = t.elapsed().as_nanos() / u128::from(n);
    println!("{what:<44} {ns:>9} ns/op  ({n} ops)");
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn Error>> {
    let dir = tempfile::TempDir::new()?;
    let sled = SledCallStore::open(dir.path())?;
    let rec = call();
    sled.create(&rec).await?;
    let id = rec.call_id.as_str();
    let dyn_store: &dyn CallStore = &sled;

    ns_per_op("get: SledCallStore inherent (sync)", GETS, || async {
        black_box(sled.get(id)?);
        Ok(())
    })
    .await?;
    ns_per_op(
        "get: <SledCallStore as CallStore> (static)",
        GETS,
        || async {
            black_box(CallStore::get(&sled, id).await?);
            Ok(())
        },
    )
    .await?;
    ns_per_op("get: &dyn CallStore", GETS, || async {
        black_box(dyn_store.get(id).await?);
        Ok(())
    })
    .await?;

    ns_per_op(
        "apply_transition: SledCallStore inherent",
        WRITES,
        || async {
            black_box(sled.apply_transition(id, bump).await?);
            Ok(())
        },
    )
    .await?;
    ns_per_op("apply_transition: &dyn CallStore", WRITES, || async {
        black_box(dyn_store.apply_transition(id, bump).await?);
        Ok(())
    })
    .await?;
    Ok(())
}
