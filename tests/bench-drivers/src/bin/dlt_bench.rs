//! DND list benchmark (issue 25): the compact `NumberSet` at 10 M numbers, side by side in
//! one run with the two obvious alternatives (a `HashSet<u64>` and a sorted `Vec<u64>`):
//! memory, build and load times, and lookup cost for hits and misses in random order;
//! then the whole per-call check (`c2c_dlt::check_call`: caller-ID series, calling hours,
//! DND and consent lookups) as the gateway runs it. Prints its figures; release build
//! (tests/bench/dlt.sh).

use std::collections::HashSet;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use c2c_dlt::{CallFacts, ListRegistry, NumberSet};
use c2c_tenancy::{CallCategory, CallingHours, KeyRing, Policy};
use clap::Parser;

#[derive(Parser)]
struct Args {
    /// Numbers in the DND list.
    #[arg(long, default_value_t = 10_000_000)]
    numbers: usize,
    /// Lookups per measurement.
    #[arg(long, default_value_t = 10_000_000)]
    lookups: usize,
    /// The example policy directory (for the per-call check).
    #[arg(long, default_value = "./policies")]
    policies: std::path::PathBuf,
}

/// xorshift64*: the same sequence every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A mobile number, 6000000000..=9999999999.
    fn mobile(&mut self) -> u64 {
        6_000_000_000 + self.next() % 4_000_000_000
    }
}

fn ns_per(start: Instant, n: usize) -> f64 {
    start.elapsed().as_nanos() as f64 / n as f64
}

fn main() {
    let a = Args::parse();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let numbers: Vec<u64> = (0..a.numbers).map(|_| rng.mobile()).collect();
    // Probes: half drawn from the list (hits), half fresh (almost all misses), shuffled.
    let mut probes: Vec<u64> = Vec::with_capacity(a.lookups);
    for i in 0..a.lookups {
        probes.push(if i % 2 == 0 {
            numbers[(rng.next() % numbers.len() as u64) as usize]
        } else {
            rng.mobile()
        });
    }

    println!(
        "DND list of {} numbers; {} lookups per figure (half hits)",
        a.numbers, a.lookups
    );
    let t = Instant::now();
    let set = NumberSet::from_numbers(numbers.clone());
    let build_compact = t.elapsed();
    let t = Instant::now();
    let mut sorted = numbers.clone();
    sorted.sort_unstable();
    sorted.dedup();
    let build_sorted = t.elapsed();
    let t = Instant::now();
    let hash: HashSet<u64> = numbers.iter().copied().collect();
    let build_hash = t.elapsed();

    let compact_bytes = set.heap_bytes();
    let sorted_bytes = sorted.len() * 8;
    // hashbrown: one u64 slot plus one control byte per bucket.
    let hash_bytes = hash.capacity() * 9;
    let lookup = |f: &dyn Fn(u64) -> bool| {
        // Warm once, then measure.
        let mut hits = 0usize;
        for &p in probes.iter().take(100_000) {
            hits += usize::from(f(black_box(p)));
        }
        black_box(hits);
        let t = Instant::now();
        let mut hits = 0usize;
        for &p in &probes {
            hits += usize::from(f(black_box(p)));
        }
        (ns_per(t, probes.len()), hits)
    };
    let (ns_compact, hits_compact) = lookup(&|p| set.contains(p));
    let (ns_sorted, hits_sorted) = lookup(&|p| sorted.binary_search(&p).is_ok());
    let (ns_hash, hits_hash) = lookup(&|p| hash.contains(&p));
    assert_eq!(
        hits_compact, hits_sorted,
        "the compact set disagrees with the sorted list"
    );
    assert_eq!(
        hits_compact, hits_hash,
        "the compact set disagrees with the hash set"
    );

    println!();
    println!(
        "{:<28} {:>12} {:>14} {:>14}",
        "structure", "memory MB", "build ms", "lookup ns"
    );
    let row = |name: &str, bytes: usize, build: std::time::Duration, ns: f64| {
        println!(
            "{name:<28} {:>12.1} {:>14.0} {:>14.1}",
            bytes as f64 / 1e6,
            build.as_secs_f64() * 1e3,
            ns
        );
    };
    row(
        "NumberSet (compact, ours)",
        compact_bytes,
        build_compact,
        ns_compact,
    );
    row("sorted Vec<u64>", sorted_bytes, build_sorted, ns_sorted);
    row("HashSet<u64> (std)", hash_bytes, build_hash, ns_hash);
    println!(
        "compact / sorted: memory {:.2}x, lookup {:.2}x; compact / HashSet: memory {:.2}x, lookup {:.2}x",
        compact_bytes as f64 / sorted_bytes as f64,
        ns_compact / ns_sorted,
        compact_bytes as f64 / hash_bytes as f64,
        ns_compact / ns_hash
    );
    drop(hash);
    drop(sorted);

    // Files: the text form a tenant uploads and the compact form `dlt compact` writes.
    let dir = tempdir();
    let text_path = dir.join("dnd.txt");
    {
        use std::io::Write;
        let mut w = std::io::BufWriter::new(std::fs::File::create(&text_path).unwrap());
        for n in &numbers {
            writeln!(w, "+91{n}").unwrap();
        }
    }
    let compact_path = dir.join("dnd.bin");
    set.write_compact(std::io::BufWriter::new(
        std::fs::File::create(&compact_path).unwrap(),
    ))
    .unwrap();
    let size = |p: &std::path::Path| std::fs::metadata(p).unwrap().len() as f64 / 1e6;
    let t = Instant::now();
    let from_text = NumberSet::read(std::fs::File::open(&text_path).unwrap(), usize::MAX).unwrap();
    let read_text = t.elapsed();
    let t = Instant::now();
    let from_compact =
        NumberSet::read(std::fs::File::open(&compact_path).unwrap(), usize::MAX).unwrap();
    let read_compact = t.elapsed();
    assert!(
        from_text == set && from_compact == set,
        "a file read back differs"
    );
    println!();
    println!(
        "load: text list {:.0} MB in {:.2} s; compact file {:.0} MB in {:.3} s ({:.0}x faster)",
        size(&text_path),
        read_text.as_secs_f64(),
        size(&compact_path),
        read_compact.as_secs_f64(),
        read_text.as_secs_f64() / read_compact.as_secs_f64()
    );

    // The whole per-call check, as /click2call and /connect run it: a promotional call
    // to a number on the DND list that consented (every rule, both lookups), and a
    // service call (the caller-ID rule only).
    let consent = dir.join("consent.txt");
    std::fs::write(&consent, "+919530251797\n").unwrap();
    let mut dnd_numbers = numbers;
    dnd_numbers.push(9_530_251_797);
    NumberSet::from_numbers(dnd_numbers)
        .write_compact(std::io::BufWriter::new(
            std::fs::File::create(&compact_path).unwrap(),
        ))
        .unwrap();
    let base = c2c_tenancy::load_dir(&a.policies).expect("the example policy loads");
    let gateway = base.gateway.clone();
    let mut tenants = base.tenants.clone();
    drop(base);
    let acme = tenants.remove("acme").expect("example tenant acme");
    let mut acme = Arc::try_unwrap(acme).expect("sole owner of the example tenant");
    acme.dlt.dnd_file = Some(compact_path);
    acme.dlt.consent_file = Some(consent);
    acme.dlt.calling_hours = Some(CallingHours::parse("00:00-24:00").unwrap());
    tenants.insert("acme".into(), Arc::new(acme));
    let policy = Policy::new(gateway, tenants, KeyRing::default());
    let lists = ListRegistry::default();
    let t = Instant::now();
    for r in lists.reload(&policy, usize::MAX) {
        assert!(r.outcome.is_ok(), "{r:?}");
    }
    let reload = t.elapsed();
    let tenant = policy.tenant("acme").unwrap();
    let trunk = &tenant.trunks[0];
    let now_ms = 1_796_400_000_000;
    let check = |category: CallCategory, caller_id: &str, runs: usize| {
        let facts = CallFacts {
            trunk,
            category: Some(category),
            caller_id,
            number: "9530251797",
        };
        let t = Instant::now();
        for _ in 0..runs {
            let r = c2c_dlt::check_call(
                &policy.gateway.dlt,
                &lists,
                tenant,
                black_box(&facts),
                now_ms,
            );
            assert_eq!(r, Ok(category));
        }
        ns_per(t, runs)
    };
    let promo = check(CallCategory::Promotional, "+911401234567", 2_000_000);
    let service = check(CallCategory::Service, &trunk.default_did, 2_000_000);
    println!(
        "per-call check: promotional (series, hours, DND and consent lookups) {promo:.0} ns, \
         service (caller ID only) {service:.0} ns; lists read at reload in {:.3} s",
        reload.as_secs_f64()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn tempdir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("c2c-dlt-bench-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}
