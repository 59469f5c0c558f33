//! Accuracy of the token estimate (used when a provider reports no usage) against real BPE
//! tokenizers: tiktoken's o200k (GPT-4o and later) and cl100k (GPT-4, GPT-3.5), over English
//! prompts, source code, Chinese/Japanese/Korean text and JSON. The mean absolute relative error
//! per document must stay within 10% overall against o200k; the table printed with
//! `--nocapture` is the one in docs/benchmarks.md.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test code fails loudly

use tollgate_engine::usage::estimate_tokens;

fn root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn jsonl_texts(path: &str, take: usize) -> Vec<String> {
    let text = std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["text"].as_str().map(str::to_string))
        .filter(|t| t.len() >= 40)
        .take(take)
        .collect()
}

/// The corpus: (category, documents).
fn corpus() -> Vec<(&'static str, Vec<String>)> {
    let english = jsonl_texts("eval/corpus/benign.jsonl", 300);
    let mut code = Vec::new();
    for dir in [
        "filter/engine/src",
        "filter/engine/src/detect",
        "filter/engine/src/provider",
        "filter/cli/src",
    ] {
        let mut files: Vec<_> = std::fs::read_dir(root().join(dir))
            .unwrap()
            .filter_map(Result::ok)
            .map(|e| e.path())
            .collect();
        files.sort();
        for f in files
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        {
            let src = std::fs::read_to_string(&f).unwrap();
            // documents of about 2 KB, cut at line ends
            let mut doc = String::new();
            for line in src.lines() {
                doc.push_str(line);
                doc.push('\n');
                if doc.len() > 2000 {
                    code.push(std::mem::take(&mut doc));
                }
            }
        }
    }
    code.truncate(150);
    let cjk: Vec<String> = std::fs::read_to_string(root().join("filter/engine/tests/data/cjk.txt"))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let mut json = Vec::new();
    for name in [
        "openai_chat_stream.sse",
        "anthropic_stream.sse",
        "responses_stream.sse",
    ] {
        let s =
            std::fs::read_to_string(root().join("filter/engine/tests/data").join(name)).unwrap();
        json.extend(
            s.lines()
                .filter_map(|l| l.strip_prefix("data: "))
                .filter(|l| l.len() > 40)
                .map(str::to_string),
        );
    }
    let pii = std::fs::read_to_string(root().join("eval/corpus/pii.jsonl")).unwrap();
    json.extend(pii.lines().take(100).map(str::to_string));
    vec![
        ("English prompts", english),
        ("source code", code),
        ("CJK", cjk),
        ("JSON", json),
    ]
}

fn mean_abs_rel_error(docs: &[String], count: impl Fn(&str) -> usize) -> (f64, f64) {
    let mut sum = 0.0;
    let mut signed = 0.0;
    for d in docs {
        let truth = count(d).max(1) as f64;
        let est = estimate_tokens(d) as f64;
        sum += (est - truth).abs() / truth;
        signed += (est - truth) / truth;
    }
    let n = docs.len().max(1) as f64;
    (sum / n, signed / n)
}

#[test]
fn estimate_is_within_ten_percent_of_real_tokenizers() {
    let o200k = tiktoken_rs::o200k_base().unwrap();
    let cl100k = tiktoken_rs::cl100k_base().unwrap();
    let corpus = corpus();
    println!(
        "| corpus | documents | MAE vs o200k | bias vs o200k | MAE vs cl100k | bias vs cl100k |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    let mut all_o = 0.0;
    let mut all_c = 0.0;
    let mut n = 0.0;
    for (name, docs) in &corpus {
        assert!(docs.len() >= 20, "{name}: only {} documents", docs.len());
        let (o, ob) = mean_abs_rel_error(docs, |t| o200k.encode_ordinary(t).len());
        let (c, cb) = mean_abs_rel_error(docs, |t| cl100k.encode_ordinary(t).len());
        println!(
            "| {name} | {} | {:.1}% | {:+.1}% | {:.1}% | {:+.1}% |",
            docs.len(),
            o * 100.0,
            ob * 100.0,
            c * 100.0,
            cb * 100.0
        );
        all_o += o * docs.len() as f64;
        all_c += c * docs.len() as f64;
        n += docs.len() as f64;
        assert!(
            o <= 0.20,
            "{name}: mean absolute error {:.1}% against o200k",
            o * 100.0
        );
    }
    println!(
        "| all | {n} | {:.1}% | | {:.1}% | |",
        all_o / n * 100.0,
        all_c / n * 100.0
    );
    assert!(
        all_o / n <= 0.10,
        "overall mean absolute error {:.1}% against o200k",
        all_o / n * 100.0
    );
}
