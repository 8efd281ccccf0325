//! Regenerates `experiments/RESULTS.md`: runs every experiment once in a short configuration (`--json`), and
//! writes one table of what each reported, headed by the date, the machine, its load and the command.
//!
//! ```text
//! cargo build -p gpu-uring-experiments --release --bins
//! cargo run -p gpu-uring-experiments --release --bin results -- [--device auto] [--only NAME,...]
//! ```
//!
//! The figures are single short runs on whatever machine ran them, not benchmarks (the Criterion benchmarks
//! are in `benches/`); the experiments' own flags give longer and repeated runs. Also writes every row as
//! JSON (`results.json`) beside the experiments' CSV files in the output folder.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;
use gpu_uring_experiments::{fail, loadavg};

/// The short configuration of each experiment, in the order the table lists them. `{out}` is replaced by the
/// experiment's output folder.
const SHORT: &[(&str, &[&str])] = &[
    ("device_check", &["--lanes", "3"]),
    (
        "device_print",
        &[
            "--lanes",
            "8",
            "--lines",
            "2000",
            "--print-to",
            "{out}/lines.txt",
            "--verify",
        ],
    ),
    (
        "cpu_mt",
        &[
            "--threads",
            "4",
            "--ops",
            "20000",
            "--bursts",
            "5",
            "--burst",
            "64",
        ],
    ),
    ("shared_ring_cpu_only", &["--cycles", "3"]),
    ("ring_latency", &["--hot", "2000", "--cold", "20"]),
    ("lane_work", &["--ops", "50000", "--rounds", "3"]),
    (
        "print_latency",
        &["--samples", "2000", "--lanes", "4", "--lines", "2000"],
    ),
    (
        "device_no_poll",
        &["--lanes", "8", "--ops", "30", "--rounds", "3"],
    ),
    (
        "pump_latency",
        &[
            "--hot",
            "2000",
            "--cold",
            "20",
            "--mib",
            "8",
            "--repeat",
            "1",
            "--park-us",
            "100,1000",
            "--lanes",
            "1,8",
        ],
    ),
    ("megakernel_stream", &["--mib", "16"]),
    ("read_throughput", &["--rounds", "3", "--mib", "16"]),
    (
        "memory_placement",
        &["--mib", "1", "--accesses", "2000", "--repeat", "1"],
    ),
    ("device_edit_buffer", &["--lanes", "4", "--steps", "50"]),
];

/// Runs the experiments in their short configurations and writes the results table.
#[derive(Parser)]
#[command(version)]
struct Cli {
    /// Device for every experiment (see any experiment's `--help`).
    #[arg(long, default_value = "auto")]
    device: String,
    /// Only these experiments (comma-separated names).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// The Markdown file to write [default: experiments/RESULTS.md of this workspace].
    #[arg(long, value_name = "FILE")]
    write: Option<PathBuf>,
    /// Folder for the experiments' CSV/SVG output and results.json [default:
    /// target/experiments/results].
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
}

/// What one experiment run gave.
#[derive(serde::Serialize)]
struct Run {
    experiment: String,
    command: String,
    device: String,
    status: String,
    seconds: f64,
    rows: Vec<Row>,
}

/// One JSON row, its keys in the order the experiment wrote them (a `serde_json::Map` would sort them).
struct Row(Vec<(String, serde_json::Value)>);

impl Row {
    fn get(&self, key: &str) -> Option<&serde_json::Value> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
}

impl<'de> serde::Deserialize<'de> for Row {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Row, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Row;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut a: A) -> Result<Row, A::Error> {
                let mut v = Vec::new();
                while let Some(e) = a.next_entry::<String, serde_json::Value>()? {
                    v.push(e);
                }
                Ok(Row(v))
            }
        }
        d.deserialize_map(Visit)
    }
}

impl serde::Serialize for Row {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

fn main() {
    let cli = Cli::parse();
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let write = cli
        .write
        .clone()
        .unwrap_or_else(|| manifest.join("RESULTS.md"));
    let out = cli.out.clone().unwrap_or_else(|| {
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| manifest.join("..").join("target"));
        target.join("experiments").join("results")
    });
    let bin_dir = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| fail("cannot find this program's folder"));
    let load_before = loadavg();
    let started = SystemTime::now();
    let mut runs = Vec::new();
    for (name, args) in SHORT {
        if !cli.only.is_empty() && !cli.only.iter().any(|o| o == name) {
            continue;
        }
        let exe = bin_dir.join(name);
        if !exe.exists() {
            fail(&format!(
                "{} is missing: build the experiments first (cargo build -p gpu-uring-experiments --release --bins)",
                exe.display()
            ));
        }
        let dir = out.join(name);
        if let Err(e) = std::fs::create_dir_all(&dir) {
            fail(&format!("cannot create {}: {e}", dir.display()));
        }
        let args: Vec<String> = args
            .iter()
            .map(|a| a.replace("{out}", &dir.to_string_lossy()))
            .collect();
        let shown: Vec<&str> = SHORT
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, a)| a.to_vec())
            .unwrap_or_default();
        let command =
            format!("{name} --device {} {}", cli.device, shown.join(" ")).replace("{out}/", "");
        eprintln!("running {command}");
        let t0 = Instant::now();
        let res = Command::new(&exe)
            .args(["--device", &cli.device, "--json", "--out"])
            .arg(&dir)
            .args(&args)
            .output();
        let seconds = t0.elapsed().as_secs_f64();
        let run = match res {
            Err(e) => Run {
                experiment: name.to_string(),
                command,
                device: String::new(),
                status: format!("did not start: {e}"),
                seconds,
                rows: Vec::new(),
            },
            Ok(o) => {
                let stdout = String::from_utf8_lossy(&o.stdout);
                let stderr = String::from_utf8_lossy(&o.stderr);
                let rows: Vec<_> = stdout
                    .lines()
                    .filter_map(|l| serde_json::from_str(l).ok())
                    .collect();
                let device = stderr
                    .lines()
                    .chain(stdout.lines())
                    .find_map(|l| l.strip_prefix("device: "))
                    .unwrap_or("")
                    .to_string();
                let skip = stderr
                    .lines()
                    .chain(stdout.lines())
                    .find_map(|l| l.strip_prefix("skip: "));
                let status = match (o.status.code(), skip) {
                    (Some(0), Some(why)) => format!("skip: {why}"),
                    (Some(0), None) => "ok".to_string(),
                    (code, _) => {
                        let last = stderr.lines().last().unwrap_or("").to_string();
                        format!(
                            "exit {}: {last}",
                            code.map_or("signal".into(), |c| c.to_string())
                        )
                    }
                };
                Run {
                    experiment: name.to_string(),
                    command,
                    device,
                    status,
                    seconds,
                    rows,
                }
            }
        };
        runs.push(run);
    }
    let load_after = loadavg();
    let json = out.join("results.json");
    match serde_json::to_string_pretty(&runs) {
        Ok(s) => {
            if let Err(e) = std::fs::write(&json, s) {
                eprintln!("warning: cannot write {}: {e}", json.display());
            }
        }
        Err(e) => eprintln!("warning: results.json: {e}"),
    }
    let md = render(&cli, &runs, started, load_before, load_after);
    if let Err(e) = std::fs::write(&write, md) {
        fail(&format!("cannot write {}: {e}", write.display()));
    }
    eprintln!("wrote {} and {}", write.display(), json.display());
}

/// The Markdown page: provenance, then one table with a line per result row.
fn render(cli: &Cli, runs: &[Run], started: SystemTime, before: f64, after: f64) -> String {
    let mut s = String::from("# Experiment results\n\n");
    s.push_str(
        "Generated by a command; do not edit by hand. Each experiment ran once, in the short configuration \
         shown, on the machine below: single short runs, not benchmarks (see `benches/README.md`); each \
         experiment's flags give longer and repeated runs (`experiments/README.md`).\n\n",
    );
    let only = if cli.only.is_empty() {
        String::new()
    } else {
        format!(" --only {}", cli.only.join(","))
    };
    // The cargo features this binary was built with: the experiments it runs were built with the same.
    let features: Vec<&str> = [
        ("cuda", cfg!(feature = "cuda")),
        ("hip", cfg!(feature = "hip")),
    ]
    .iter()
    .filter(|(_, on)| *on)
    .map(|(f, _)| *f)
    .collect();
    let features = if features.is_empty() {
        String::new()
    } else {
        format!(" --features {}", features.join(","))
    };
    s.push_str(&format!(
        "- command: `cargo build -p gpu-uring-experiments --release --bins{features} && cargo run -p \
         gpu-uring-experiments --release{features} --bin results -- --device {}{only}`\n",
        cli.device
    ));
    s.push_str(&format!("- date: {} (UTC)\n", utc(started)));
    s.push_str(&format!("- machine: {}\n", machine()));
    s.push_str(&format!(
        "- load (1-minute average): {before:.2} before, {after:.2} after\n\n"
    ));
    s.push_str("| experiment | command | device | status | s | table | figures |\n");
    s.push_str("| --- | --- | --- | --- | --- | --- | --- |\n");
    for r in runs {
        let head = format!(
            "| {} | `{}` | {} | {} | {:.1} |",
            r.experiment,
            cell(&r.command),
            cell(&r.device),
            cell(&r.status),
            r.seconds
        );
        if r.rows.is_empty() {
            s.push_str(&format!("{head} | |\n"));
        }
        for (i, row) in r.rows.iter().enumerate() {
            let lead = if i == 0 {
                head.clone()
            } else {
                "| | | | | |".to_string()
            };
            let table = row.get("table").and_then(|v| v.as_str()).unwrap_or("");
            let figures: Vec<String> = row
                .0
                .iter()
                .filter(|(k, _)| *k != "experiment" && *k != "table")
                .map(|(k, v)| format!("{k}={}", value(v)))
                .collect();
            s.push_str(&format!(
                "{lead} {} | {} |\n",
                cell(table),
                cell(&figures.join(" "))
            ));
        }
    }
    s
}

fn value(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() => {
                if f.abs() >= 100.0 {
                    format!("{f:.0}")
                } else {
                    format!("{f:.3}")
                }
            }
            _ => n.to_string(),
        },
        other => other.to_string(),
    }
}

/// Text safe inside a Markdown table cell.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// `YYYY-MM-DD HH:MM` in UTC.
fn utc(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60
    )
}

/// Kernel release, CPU model and count.
fn machine() -> String {
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown kernel".into());
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let n = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("Linux {kernel}, {cpu}, {n} CPUs available")
}
