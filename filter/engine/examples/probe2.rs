use std::time::Instant;
use tollgate_engine::detect::{
    ascii_classes, injection_rules, secret_rules, trigger::TriggeredRules,
};
fn main() {
    let path = std::env::args().nth(1).unwrap_or_default();
    let texts: Vec<String> = std::fs::read_to_string(&path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| {
            v.get("text")
                .and_then(|t| t.as_str())
                .map(|s| s.to_lowercase())
        })
        .collect();
    let mb = texts.iter().map(|t| t.len()).sum::<usize>() as f64 / 1e6;
    let kw: Vec<String> = injection_rules()
        .iter()
        .map(|r| ascii_classes(r.pattern))
        .collect();
    let t = TriggeredRules::new(&kw).unwrap_or_else(|e| panic!("{e:?}"));
    println!("keyword literals {}", t.literal_count());
    for &i in t.untriggered_indices() {
        println!(
            "  untriggered kw {} {}",
            injection_rules()[i].id,
            &injection_rules()[i].pattern[..injection_rules()[i].pattern.len().min(90)]
        );
    }
    let s: Vec<String> = secret_rules()
        .iter()
        .map(|r| ascii_classes(r.pattern))
        .collect();
    let st = TriggeredRules::new(&s).unwrap_or_else(|e| panic!("{e:?}"));
    println!("secret literals {}", st.literal_count());
    for &i in st.untriggered_indices() {
        println!(
            "  untriggered secret {} {}",
            secret_rules()[i].id,
            &secret_rules()[i].pattern[..secret_rules()[i].pattern.len().min(90)]
        );
    }
    let mut counts = Vec::new();
    for x in &texts {
        t.trigger_counts(x, &mut counts);
    }
    let mut ranked: Vec<(usize, &str)> = counts
        .iter()
        .enumerate()
        .map(|(i, c)| (*c, injection_rules()[i].id))
        .collect();
    ranked.sort_by(|a, b| b.0.cmp(&a.0));
    println!("kw triggers total {}", counts.iter().sum::<usize>());
    for r in ranked.iter().take(12) {
        println!("  {:>6} {}", r.0, r.1);
    }
    let mut counts = Vec::new();
    for x in &texts {
        st.trigger_counts(x, &mut counts);
    }
    let mut ranked: Vec<(usize, &str)> = counts
        .iter()
        .enumerate()
        .map(|(i, c)| (*c, secret_rules()[i].id))
        .collect();
    ranked.sort_by(|a, b| b.0.cmp(&a.0));
    println!("secret triggers total {}", counts.iter().sum::<usize>());
    for r in ranked.iter().take(8) {
        println!("  {:>6} {}", r.0, r.1);
    }
    let start = Instant::now();
    let mut out = Vec::new();
    for x in &texts {
        t.find(x, &mut out);
    }
    println!(
        "keyword find: {:.1} MB/s",
        mb / start.elapsed().as_secs_f64()
    );
    let start = Instant::now();
    for x in &texts {
        st.find(x, &mut out);
    }
    println!(
        "secret find: {:.1} MB/s",
        mb / start.elapsed().as_secs_f64()
    );
}
#[allow(dead_code)]
fn unused() {}
