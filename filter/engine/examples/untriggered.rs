//! Lists the rules that no literal can trigger (each costs a full scan of every text):
//! `cargo run -p tollgate-engine --example untriggered`.
use tollgate_engine::detect::{DetectorSettings, Detectors};

fn main() {
    match Detectors::compile(&DetectorSettings::default()) {
        Ok(d) => {
            for id in d.untriggered_rule_ids() {
                println!("{id}");
            }
        }
        Err(e) => eprintln!("{e}"),
    }
}
