//! Quick throughput probe of each detector family over a JSONL corpus's `text` fields.
use std::time::Instant;
use tollgate_engine::detect::{DetectorSettings, Detectors, ScanSet};
use tollgate_engine::normalize::Normalizer;
fn main() {
    let path = std::env::args().nth(1).unwrap_or_default();
    let texts: Vec<String> = std::fs::read_to_string(&path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v.get("text").and_then(|t| t.as_str()).map(str::to_string))
        .collect();
    let d = Detectors::compile(&DetectorSettings::default()).unwrap_or_else(|e| panic!("{e}"));
    println!("untriggered: {:?}", d.untriggered_rules());
    let mut n = Normalizer::new();
    let mb = texts.iter().map(|t| t.len()).sum::<usize>() as f64 / 1e6;
    for (name, set) in [
        (
            "injection",
            ScanSet {
                injection: true,
                ..ScanSet::NONE
            },
        ),
        (
            "pii",
            ScanSet {
                pii: true,
                ..ScanSet::NONE
            },
        ),
        (
            "secrets",
            ScanSet {
                secrets: true,
                ..ScanSet::NONE
            },
        ),
        (
            "exfil",
            ScanSet {
                exfil: true,
                ..ScanSet::NONE
            },
        ),
        (
            "all",
            ScanSet {
                injection: true,
                pii: true,
                secrets: true,
                exfil: false,
            },
        ),
    ] {
        let t = Instant::now();
        let mut out = Vec::new();
        for _ in 0..3 {
            out.clear();
            for text in &texts {
                d.scan(text, set, &mut n, &mut out);
            }
        }
        println!(
            "{name}: {:.1} MB/s ({} hits)",
            3.0 * mb / t.elapsed().as_secs_f64(),
            out.len()
        );
    }
}
