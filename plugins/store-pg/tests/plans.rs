#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Plans the claim path depends on, checked on a real PostgreSQL with statistics that
//! no longer fit the table: analysed when it held a few rows, or when every entry was
//! delivered, then a backlog of hundreds. In such states the claim once read the whole
//! pending backlog every time (BENCHMARKS.md, issue 22): the live claims through an
//! index keyed by tenant, the tenants with pending entries through an index of pending
//! entries in seq order, sorted. And the batched call write's lock order.

use c2c_store_pg::{
    PgCallStore, PgOptions, PgStore, ATTEMPT_CLAIMING, BATCH, LIVE_CLAIMS, PENDING_TENANTS,
};
use deadpool_postgres::Object;

/// A fresh schema on the shared server, one connection: outbox entries `analysed`
/// (`(from, to, state)`), then `ANALYZE`, then entries `then` the statistics do not
/// know of.
async fn outbox(
    schema: &str,
    analysed: (u32, u32, &str),
    then: (u32, u32, &str),
) -> (Object, PgCallStore) {
    let mut o = PgOptions::new(c2c_test_support::pg::shared().url("db"));
    o.schema = Some(schema.to_owned());
    o.pool_size = 1;
    let pg = PgStore::open(o).await.unwrap();
    let calls = PgCallStore::new(pg.clone()).await.unwrap();
    let c = pg.client().await.unwrap();
    let (a, b) = (analysed, then);
    c.batch_execute(&format!(
        "{}; ANALYZE c2c_outbox; {}",
        insert(a.0, a.1, a.2),
        insert(b.0, b.1, b.2)
    ))
    .await
    .unwrap();
    (c, calls)
}

/// Entries `from..=to` of tenant `acme`; every 200th claimed by `node-a`.
fn insert(from: u32, to: u32, state: &str) -> String {
    format!(
        "INSERT INTO c2c_outbox (seq, webhook_id, call_id, tenant, payload_json, \
         created_ms, attempts, next_attempt_ms, state, retry_after, claimed_by, \
         claim_until_ms) \
         SELECT i, 'w' || i, 'c' || i, 'acme', '{{}}', 0, 0, 0, '{state}', false, \
         CASE WHEN i % 200 = 0 THEN 'node-a' END, CASE WHEN i % 200 = 0 THEN 9e12 ELSE 0 END \
         FROM generate_series({from}, {to}) i"
    )
}

/// The generic plan of `sql` (what a prepared statement runs after its first
/// executions), its parameters `args`.
async fn generic_plan(c: &Object, sql: &str, types: &str, args: &str) -> String {
    let msgs = c
        .simple_query(&format!(
            "SET plan_cache_mode = force_generic_plan; \
             PREPARE checked{types} AS {sql}; \
             EXPLAIN EXECUTE checked{args}; \
             DEALLOCATE checked; RESET plan_cache_mode"
        ))
        .await
        .unwrap();
    let lines: Vec<String> = msgs
        .iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
            _ => None,
        })
        .collect();
    lines.join("\n")
}

#[tokio::test]
async fn live_claims_are_read_through_their_own_index_whatever_the_statistics() {
    // Statistics of a young outbox, then a backlog.
    let (c, _calls) = outbox(
        "plans_live_claims",
        (1, 6, "pending"),
        (7, 1_000, "pending"),
    )
    .await;
    let plan = generic_plan(&c, LIVE_CLAIMS, "(bigint)", "(1)").await;
    assert!(
        plan.contains("c2c_outbox_live_claims") && plan.contains("Index Cond"),
        "the live claims are read through their index, by expiry:\n{plan}"
    );
    // And the answer: the five claimed entries of the thousand.
    let live = c.query(LIVE_CLAIMS, &[&1i64]).await.unwrap();
    assert_eq!(live.len(), 5);
}

/// The claim of one waiting entry, made in the statement that stores a delivery's result
/// (`handoff.rs`), fetches both entries by key, whatever the statistics say of the
/// pending entries (an `UPDATE` with `state = 'pending'` once read the partial pending
/// index, filtering by seq).
#[tokio::test]
async fn a_waiting_entry_is_claimed_by_its_key_whatever_the_statistics() {
    let (c, _calls) = outbox(
        "plans_claim_waiting",
        (1, 6, "pending"),
        (7, 3_000, "pending"),
    )
    .await;
    let plan = generic_plan(
        &c,
        ATTEMPT_CLAIMING,
        "(bigint, bigint, bigint, text, text, bigint, boolean, text, bigint, bigint, bigint)",
        "(41, 1, 0, 'delivered', NULL, 5, false, 'node-b', 1, 42, 1)",
    )
    .await;
    assert!(
        plan.matches("c2c_outbox_pkey").count() >= 2 && !plan.contains("Seq Scan"),
        "the attempt's entry and the waiting one are fetched by their keys:\n{plan}"
    );
    // The attempt on 41 writes it; 42 is claimed.
    let attempt_then_claim = |seq: i64, node: &'static str| {
        let c = &c;
        async move {
            let row = c
                .query_one(
                    ATTEMPT_CLAIMING,
                    &[
                        &seq,
                        &1i64,
                        &0i64,
                        &"delivered",
                        &None::<String>,
                        &Some(5i64),
                        &false,
                        &node,
                        &10i64,
                        &42i64,
                        &1i64,
                    ],
                )
                .await
                .unwrap();
            (row.get::<_, i64>(0), row.get::<_, Option<i64>>(1))
        }
    };
    assert_eq!(attempt_then_claim(41, "node-b").await, (1, Some(42)));
    // A live claim of another node's is left alone; an entry that is gone is not
    // written.
    assert_eq!(attempt_then_claim(9_999, "node-c").await, (0, None));
}

#[tokio::test]
async fn the_tenants_with_pending_entries_are_a_skip_scan_whatever_the_statistics() {
    // Statistics of an outbox whose every entry was delivered (after a quiet spell),
    // then a backlog.
    let (c, _calls) = outbox(
        "plans_pending_tenants",
        (1, 2_000, "delivered"),
        (2_001, 3_000, "pending"),
    )
    .await;
    let plan = generic_plan(&c, PENDING_TENANTS, "", "").await;
    assert!(
        plan.contains("c2c_outbox_tenant_pending") && !plan.contains("Sort"),
        "one probe of the per-tenant pending index per tenant, no sort:\n{plan}"
    );
    let tenants = c.query(PENDING_TENANTS, &[]).await.unwrap();
    assert_eq!(tenants.len(), 1);
}

/// The batched call write (`calls/batch.rs`) locks the rows it updates in the order its
/// arrays bind them (call id order): a nested loop whose outer side is the batch and
/// whose inner side probes the primary key, never a scan of the table in its own order.
#[tokio::test]
async fn the_batched_write_updates_its_rows_in_the_batchs_order() {
    let (c, _calls) = outbox("plans_batch", (1, 2, "delivered"), (3, 4, "delivered")).await;
    c.batch_execute(
        "INSERT INTO c2c_calls (call_id, tenant, created_ms, version, is_open, driver, record) \
         SELECT 'c' || i, 'acme', i, 1, i % 10 = 0, 'node-a', '{}' \
         FROM generate_series(1, 20000) i; ANALYZE c2c_calls",
    )
    .await
    .unwrap();
    let types = format!(
        "(text, integer, {})",
        [
            "text", "text", "bigint", "bigint", "boolean", "text", "bigint", "text", // writes
            "text", "text", "text", "text", "text", "bigint", // tallies
            "text", "bigint", "text", "text", "text", "bigint", "bigint", "bigint", "text", "text",
            "bigint", "bigint", "boolean", "bigint", // webhooks
        ]
        .map(|t| format!("{t}[]"))
        .join(", ")
    );
    let args = format!("('node-a', 32, {})", vec!["'{}'"; 28].join(", "));
    let plan = generic_plan(&c, BATCH, &types, &args).await;
    let update = plan
        .find("Update on c2c_calls c")
        .unwrap_or_else(|| panic!("{plan}"));
    let update = &plan[update..];
    let (outer, inner) = (
        update.find("CTE Scan on job j"),
        update.find("Index Scan using c2c_calls_pkey on c2c_calls c"),
    );
    assert!(
        update.contains("Nested Loop") && outer.is_some() && outer < inner,
        "a nested loop over the batch, probing the primary key:\n{plan}"
    );
    assert!(!plan.contains("Seq Scan on c2c_calls"), "{plan}");
}
