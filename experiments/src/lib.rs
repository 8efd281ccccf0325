//! Shared command line and output for the experiments (one binary each in `src/bin/`).
//!
//! Every experiment takes the same common flags ([`CommonArgs`]): `--device auto|cpu|vulkan[:NAME]|hip|cuda`,
//! `--json` and `--out DIR`. It opens its device with [`Experiment::open_device`] (or
//! [`Experiment::cpu_only`] when it measures the CPU path by definition), which prints the standard *device
//! line*: which device ran, and why each better device was skipped. Results are [`Record`]s collected into
//! named tables; [`Experiment::table`] prints an aligned table, writes `DIR/<table>.csv`, and with `--json`
//! writes one JSON object per row to stdout (the human-readable output then goes to stderr, so stdout stays
//! machine-readable). [`line_chart`] draws SVG charts beside the CSV. The library's log records (the `log`
//! facade) go to stderr: warnings by default, more with `--verbose` (`-v` debug, `-vv` trace).
//!
//! Criterion benchmarks live in `benches/benches/`; see `benches/README.md`.

use std::io::Write as _;
use std::path::{Path, PathBuf};

pub mod cli;
mod errno;
mod notice;
pub mod progress;
pub mod rpc;
mod transfer;

pub use errno::{errno_name, errno_text};
pub use transfer::core_to_core_rtt;

use clap::Args;
use gpu_uring::backend::{self, Device, DeviceError, DeviceSelector};
use gpu_uring::protocol::DeviceRing;
use gpu_uring::ring::DeviceAccess;

/// One line for an experiment's summary: which access mode the ring ran in, and the protocol-violation
/// counters (PROTOCOL.md, "Trust model"), which stay 0 for device code that follows the library.
pub fn ring_mode_line(ring: &DeviceRing) -> String {
    let v = ring.violations();
    let w = ring.waker_stats();
    format!(
        "ring: {}; protocol violations: host-detected {}, device-reported {}; foreign CQEs {}; CQ overflow flushes {}",
        ring.access().name(),
        v.host_detected,
        v.device_reported,
        v.foreign_cqes,
        w.overflow_flushes
    )
}

/// Flags every experiment accepts.
#[derive(Debug, Clone, Args)]
pub struct CommonArgs {
    /// Device to run on: auto (best present, falling back to the CPU reference device), cpu,
    /// vulkan[:NAME], hip or cuda.
    #[arg(long, default_value = "auto", value_name = "DEVICE")]
    pub device: DeviceSelector,
    /// Write one JSON object per result row to stdout; human-readable output goes to stderr.
    #[arg(long)]
    pub json: bool,
    /// Folder for CSV and SVG output [default: target/experiments/<experiment>].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Build rings with `DeviceAccess::DangerouslyUnconfined`: device code may then open files, write any fd
    /// and read into any host address as this process. Only to measure what confinement costs.
    #[arg(long)]
    pub dangerously_unconfined: bool,
    /// Show the library's log records on stderr: `-v` debug, `-vv` trace (default: warnings and errors).
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

/// One experiment run: its name, its flags, and where its output goes.
pub struct Experiment {
    name: &'static str,
    args: CommonArgs,
    out: PathBuf,
    device_desc: String,
    human_to_stderr: bool,
    /// The run's status line on stderr (shown after 2 s on a terminal; see [`progress`]).
    progress: Option<progress::Progress>,
}

impl Experiment {
    /// Starts experiment `name` (the binary's name) and creates its output folder.
    pub fn new(name: &'static str, args: CommonArgs) -> Experiment {
        init_logging(args.verbose);
        let out = args
            .out
            .clone()
            .unwrap_or_else(|| target_dir().join("experiments").join(name));
        if let Err(e) = std::fs::create_dir_all(&out) {
            fail(&format!(
                "cannot create output folder {}: {e}",
                out.display()
            ));
        }
        Experiment {
            name,
            out,
            device_desc: String::new(),
            human_to_stderr: args.json,
            args,
            progress: Some(progress::Progress::new(&format!("{name}: running"), None)),
        }
    }

    /// Names the phase the status line shows (`<experiment>: <what>`).
    pub fn phase(&self, what: &str) {
        if let Some(p) = &self.progress {
            p.set_message(&format!("{}: {what}", self.name));
        }
    }

    /// Ends the status line (for an experiment that shows its own progress, or whose stdout is a terminal the
    /// status line would share).
    pub fn without_status_line(mut self) -> Experiment {
        self.progress = None;
        self
    }

    /// Sends all human-readable output to stderr, also without `--json`: for experiments whose stdout carries
    /// their product (device_print's lines).
    pub fn human_to_stderr(mut self) -> Experiment {
        self.human_to_stderr = true;
        self
    }

    /// The experiment's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Whether `--json` was given.
    pub fn json(&self) -> bool {
        self.args.json
    }

    /// The output folder.
    pub fn out_dir(&self) -> &Path {
        &self.out
    }

    /// What device code may do on the rings this run builds (`--dangerously-unconfined`, else confined).
    pub fn access(&self) -> DeviceAccess {
        if self.args.dangerously_unconfined {
            DeviceAccess::DangerouslyUnconfined
        } else {
            DeviceAccess::default()
        }
    }

    /// The device line printed by [`Experiment::open_device`] / [`Experiment::cpu_only`].
    pub fn device_desc(&self) -> &str {
        &self.device_desc
    }

    /// Prints a human-readable line: to stdout, or to stderr under `--json` (or after
    /// [`Experiment::human_to_stderr`]).
    pub fn say(&self, msg: &str) {
        // A closed stream (`| head`) is not an error worth a panic: the line is dropped.
        let print = || {
            let _ = if self.human_to_stderr {
                writeln!(std::io::stderr(), "{msg}")
            } else {
                writeln!(std::io::stdout(), "{msg}")
            };
        };
        match &self.progress {
            Some(p) => p.suspend(print),
            None => print(),
        }
    }

    /// Opens the device `--device` names and prints the device line. An explicitly named device that is
    /// unavailable ends the program with `unavailable: <reason>` (exit status 2); `auto` falls back to the
    /// CPU reference device and says why each better device was skipped.
    pub fn open_device(&mut self) -> Box<dyn Device> {
        let dev = self.open_device_quietly();
        self.say(&self.device_desc.clone());
        dev
    }

    /// [`Experiment::open_device`] without printing the device line (for experiments that print it in their
    /// summary instead; [`Experiment::device_desc`] returns it).
    pub fn open_device_quietly(&mut self) -> Box<dyn Device> {
        match backend::open_with(&self.args.device, &backend::DeviceConfig::from_env()) {
            Ok((dev, skipped)) => {
                self.device_desc =
                    device_line(&self.args.device, &dev.info().to_string(), &skipped);
                dev
            }
            Err(e) => fail(&format!("--device {}: {e}", self.args.device)),
        }
    }

    /// For experiments that drive the ring from CPU threads by definition (their lanes are the CPU reference
    /// device's lanes). `--device cpu` and `auto` run; a named GPU device is opened only to report that it is
    /// unavailable or that this experiment does not use it.
    pub fn cpu_only(&mut self) {
        let sel = self.args.device.clone();
        let skipped = match &sel {
            DeviceSelector::Auto => {
                match backend::open_with(&sel, &backend::DeviceConfig::from_env()) {
                    Ok((dev, skipped)) if dev.info().caps.lanes_are_host_threads => skipped,
                    Ok((dev, skipped)) => {
                        self.say(&format!(
                        "note: auto found {}, but {} measures CPU threads as lanes; running on the CPU \
                         reference device",
                        dev.info(),
                        self.name
                    ));
                        skipped
                    }
                    Err(e) => fail(&format!("--device auto: {e}")),
                }
            }
            DeviceSelector::Cpu => Vec::new(),
            gpu => match backend::open_with(gpu, &backend::DeviceConfig::from_env()) {
                Err(e) => fail(&format!("--device {gpu}: {e}")),
                Ok(_) => fail(&format!(
                    "--device {gpu}: {} drives the ring from CPU threads only; use --device cpu",
                    self.name
                )),
            },
        };
        let info = match backend::open(&DeviceSelector::Cpu) {
            Ok((dev, _)) => dev.info(),
            Err(e) => fail(&format!("--device cpu: {e}")),
        };
        self.device_desc = device_line(&sel, &info.to_string(), &skipped);
        self.say(&self.device_desc.clone());
    }

    /// For experiments that need a GPU-style device (device memory apart from the host's, shaders): opens the
    /// device and returns it if it is one. `--device auto` that finds only the CPU reference device prints
    /// `skip: <why>` with the reasons each GPU backend was unavailable and returns `None` (the caller exits 0);
    /// `--device cpu` ends the program with exit status 2 and the same explanation; an unavailable GPU device
    /// named explicitly ends it as in [`Experiment::open_device`].
    pub fn gpu_only(&mut self, needs: &str) -> Option<Box<dyn Device>> {
        let sel = self.args.device.clone();
        if sel == DeviceSelector::Cpu {
            fail(&format!(
                "--device cpu: {} needs a GPU-style device ({needs}); the CPU reference device has none. \
                 Use --device vulkan (or auto to skip when no GPU-style device is present)",
                self.name
            ));
        }
        let (dev, skipped) = match backend::open_with(&sel, &backend::DeviceConfig::from_env()) {
            Ok(v) => v,
            Err(e) => fail(&format!("--device {sel}: {e}")),
        };
        if !dev.info().caps.lanes_are_host_threads {
            self.device_desc = device_line(&sel, &dev.info().to_string(), &skipped);
            self.say(&self.device_desc.clone());
            return Some(dev);
        }
        let reasons: Vec<String> = skipped.iter().map(|e| e.to_string()).collect();
        let reasons = reasons.join("; ");
        self.say(&format!(
            "device: none [--device {sel}]\nskip: {} needs a GPU-style device ({needs}); none is usable here: \
             {reasons}",
            self.name
        ));
        None
    }

    /// Prints `rows` as an aligned table titled `title`, writes `DIR/<table>.csv`, and under `--json` writes
    /// each row to stdout as a JSON object (with `experiment` and `table` fields first). Returns the CSV path.
    pub fn table(&self, table: &str, title: &str, rows: &[Record]) -> PathBuf {
        self.json_rows(table, rows);
        self.say(&format!("\n{title}\n{}", render_table(rows)));
        self.write_csv(table, rows)
    }

    /// Under `--json`, writes each row to stdout as a JSON object (with `experiment` and `table` fields first).
    fn json_rows(&self, table: &str, rows: &[Record]) {
        if self.args.json {
            let stdout = std::io::stdout();
            let mut o = stdout.lock();
            for r in rows {
                let _ = writeln!(
                    o,
                    "{}",
                    r.to_json(&[("experiment", self.name), ("table", table)])
                );
            }
            let _ = o.flush();
        }
    }

    /// Writes `DIR/<table>.csv` only: for detail rows that neither the printed output nor `--json` carries.
    /// Returns its path.
    pub fn write_csv(&self, table: &str, rows: &[Record]) -> PathBuf {
        let path = self.out.join(format!("{table}.csv"));
        match std::fs::write(&path, render_csv(rows)) {
            Ok(()) => self.say(&format!("wrote {}", path.display())),
            Err(e) => eprintln!("warning: cannot write {}: {e}", path.display()),
        }
        path
    }
}

/// Writes the `log` facade's records to stderr as `level target: message`.
struct StderrLog;

impl log::Log for StderrLog {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.level() <= log::max_level()
    }

    fn log(&self, r: &log::Record<'_>) {
        if self.enabled(r.metadata()) {
            eprintln!("{} {}: {}", r.level(), r.target(), r.args());
        }
    }

    fn flush(&self) {}
}

/// Installs the stderr logger: warnings and errors, plus debug with `verbose == 1`, trace with more. A second
/// call only changes the level.
pub fn init_logging(verbose: u8) {
    static LOGGER: StderrLog = StderrLog;
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(match verbose {
        0 => log::LevelFilter::Warn,
        1 => log::LevelFilter::Debug,
        _ => log::LevelFilter::Trace,
    });
}

/// The standard device line: `device: NAME (selected by --device SEL)`, then why better devices were skipped —
/// in full the first time these reasons are seen (and always with `-v`), after that as one short note.
pub fn device_line(sel: &DeviceSelector, device: &str, skipped: &[DeviceError]) -> String {
    let mut s = format!("device: {device} [--device {sel}]");
    if !skipped.is_empty() {
        let reasons: Vec<String> = skipped.iter().map(|e| e.to_string()).collect();
        let reasons = reasons.join("; ");
        if log::log_enabled!(log::Level::Debug) || notice::first_time("fallback", &reasons) {
            s.push_str("\n  skipped (fell back): ");
            s.push_str(&reasons);
        } else {
            s.push_str(" (fell back: better devices are unavailable; -v or device_check says why)");
        }
    }
    s
}

/// Prints `error: msg` to stderr and exits with status 2 (a status line still shown stays where it is: a
/// terminal shows the error below it).
pub fn fail(msg: &str) -> ! {
    eprintln!("error: {msg}");
    std::process::exit(2)
}

/// The workspace's target folder (`CARGO_TARGET_DIR`, else `target/` at the workspace root this crate was
/// built in, else `./target`).
fn target_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(d);
    }
    if let Some(ws) = Path::new(env!("CARGO_MANIFEST_DIR")).parent() {
        if ws.join("Cargo.toml").exists() {
            return ws.join("target");
        }
    }
    PathBuf::from("target")
}

/// A value in a result row.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// Text.
    Text(String),
    /// An integer.
    Int(i64),
    /// A float and the decimals to show in tables and CSV (JSON carries the full value).
    Float(f64, usize),
    /// A yes/no value (tables and CSV show `pass`/`FAIL` for [`Record::pass`]).
    Bool(bool),
}

impl Cell {
    fn text(&self) -> String {
        match self {
            Cell::Text(s) => s.clone(),
            Cell::Int(i) => i.to_string(),
            Cell::Float(f, d) => format!("{f:.d$}"),
            Cell::Bool(b) => if *b { "pass" } else { "FAIL" }.to_owned(),
        }
    }

    fn numeric(&self) -> bool {
        matches!(self, Cell::Int(_) | Cell::Float(..))
    }
}

/// JSON carries the full value: a string, an integer, a float (`null` when not finite) or a boolean.
impl serde::Serialize for Cell {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Cell::Text(v) => s.serialize_str(v),
            Cell::Int(v) => s.serialize_i64(*v),
            Cell::Float(v, _) => s.serialize_f64(*v),
            Cell::Bool(v) => s.serialize_bool(*v),
        }
    }
}

/// A row as a JSON object: `prefix` fields, then the cells, keys in that order.
struct JsonRow<'a> {
    prefix: &'a [(&'a str, &'a str)],
    cells: &'a [(&'static str, Cell)],
}

impl serde::Serialize for JsonRow<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(self.prefix.len() + self.cells.len()))?;
        for (k, v) in self.prefix {
            m.serialize_entry(k, v)?;
        }
        for (k, v) in self.cells {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

/// One result row: named cells in column order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Record {
    cells: Vec<(&'static str, Cell)>,
}

impl Record {
    /// An empty row.
    pub fn new() -> Record {
        Record::default()
    }

    /// Adds a text column.
    pub fn text(mut self, name: &'static str, v: impl Into<String>) -> Record {
        self.cells.push((name, Cell::Text(v.into())));
        self
    }

    /// Adds an integer column.
    pub fn int(mut self, name: &'static str, v: impl TryInto<i64>) -> Record {
        self.cells
            .push((name, Cell::Int(v.try_into().unwrap_or(i64::MAX))));
        self
    }

    /// Adds a float column shown with `decimals` decimals.
    pub fn float(mut self, name: &'static str, v: f64, decimals: usize) -> Record {
        self.cells.push((name, Cell::Float(v, decimals)));
        self
    }

    /// Adds a pass/fail column.
    pub fn pass(mut self, name: &'static str, ok: bool) -> Record {
        self.cells.push((name, Cell::Bool(ok)));
        self
    }

    /// Adds the ring's access mode and its protocol-violation counters (see [`ring_mode_line`]).
    pub fn ring_mode(self, ring: &DeviceRing) -> Record {
        let v = ring.violations();
        self.text("access", ring.access().name())
            .int("violations", v.host_detected + v.device_reported as u64)
            .int("foreign_cqes", v.foreign_cqes)
    }

    /// The cell named `name`.
    pub fn get(&self, name: &str) -> Option<&Cell> {
        self.cells.iter().find(|(n, _)| *n == name).map(|(_, c)| c)
    }

    /// The row as one JSON object, `prefix` fields first, keys in column order.
    pub fn to_json(&self, prefix: &[(&str, &str)]) -> String {
        let row = JsonRow {
            prefix,
            cells: &self.cells,
        };
        // Serializing strings, numbers and booleans into a map cannot fail.
        serde_json::to_string(&row).unwrap_or_default()
    }
}

/// Column names: the union over rows, in first-seen order.
fn columns(rows: &[Record]) -> Vec<&'static str> {
    let mut cols: Vec<&'static str> = Vec::new();
    for r in rows {
        for (n, _) in &r.cells {
            if !cols.contains(n) {
                cols.push(n);
            }
        }
    }
    cols
}

/// An aligned text table (`comfy-table`): a header row underlined with dashes, numbers right-aligned, text
/// left-aligned, columns two spaces apart, never wrapped to the terminal's width.
pub fn render_table(rows: &[Record]) -> String {
    use comfy_table::{CellAlignment, ContentArrangement, Table};
    let cols = columns(rows);
    let numeric: Vec<bool> = cols
        .iter()
        .map(|c| rows.iter().any(|r| r.get(c).is_some_and(Cell::numeric)))
        .collect();
    let align = |num: bool| {
        if num {
            CellAlignment::Right
        } else {
            CellAlignment::Left
        }
    };
    let mut t = Table::new();
    // Only the line under the header: `-` for the header lines, ` ` where they cross column gaps.
    t.load_preset("     - -           ")
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(
            cols.iter()
                .zip(&numeric)
                .map(|(c, &n)| comfy_table::Cell::new(c).set_alignment(align(n))),
        );
    for r in rows {
        t.add_row(cols.iter().zip(&numeric).map(|(c, &n)| {
            comfy_table::Cell::new(r.get(c).map_or(String::new(), Cell::text))
                .set_alignment(align(n))
        }));
    }
    let mut out = String::new();
    for line in t.lines() {
        // Without a left border, every line starts with the first column's padding.
        let line = line.strip_prefix(' ').unwrap_or(&line);
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// CSV (RFC 4180 quoting) with a header row: the union of the rows' columns, in first-seen order; a row
/// without a column leaves its field empty.
pub fn render_csv(rows: &[Record]) -> String {
    let cols = columns(rows);
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut put = |fields: Vec<String>| {
        if let Err(e) = w.write_record(&fields) {
            log::warn!("csv: {e}");
        }
    };
    put(cols.iter().map(|c| c.to_string()).collect());
    for r in rows {
        put(cols
            .iter()
            .map(|c| r.get(c).map_or(String::new(), Cell::text))
            .collect());
    }
    match w.into_inner() {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) => {
            log::warn!("csv: {e}");
            String::new()
        }
    }
}

/// Percentiles of a sample of durations (any one unit: the caller's).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Percentiles {
    /// Sample count.
    pub n: usize,
    /// Smallest.
    pub min: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest.
    pub max: f64,
    /// Mean.
    pub mean: f64,
}

impl Percentiles {
    /// Percentiles of `samples` through an HDR histogram (`hdrhistogram`, 3 significant digits: each
    /// percentile is within 0.1% of the exact nearest-rank value, at most one bucket above it); the minimum,
    /// maximum and mean are exact. Negative and non-finite samples count as 0. Empty input gives zeros.
    pub fn of(samples: &[f64]) -> Percentiles {
        // Thousandths of the caller's unit, so sub-unit samples (fractions of a microsecond) keep 3 digits.
        const SCALE: f64 = 1000.0;
        let n = samples.len();
        let clean = |x: f64| if x.is_finite() && x > 0.0 { x } else { 0.0 };
        let mut h = hdrhistogram::Histogram::<u64>::new(3).ok();
        for &x in samples {
            if let Some(hist) = h.as_mut() {
                if hist.record((clean(x) * SCALE).round() as u64).is_err() {
                    h = None;
                }
            }
        }
        let at = |q: f64| match &h {
            Some(h) if n > 0 => h.value_at_quantile(q) as f64 / SCALE,
            _ => 0.0,
        };
        let (min, max) = samples
            .iter()
            .map(|&x| clean(x))
            .fold(None, |m: Option<(f64, f64)>, x| {
                Some(m.map_or((x, x), |(lo, hi)| (lo.min(x), hi.max(x))))
            })
            .unwrap_or((0.0, 0.0));
        Percentiles {
            n,
            min,
            p50: at(0.5).clamp(min, max),
            p90: at(0.9).clamp(min, max),
            p99: at(0.99).clamp(min, max),
            p999: at(0.999).clamp(min, max),
            max,
            mean: if n == 0 {
                0.0
            } else {
                samples.iter().map(|&x| clean(x)).sum::<f64>() / n as f64
            },
        }
    }
}

/// A named series of (x, y) points for [`line_chart`].
pub struct Series {
    /// Legend label.
    pub label: String,
    /// Points.
    pub points: Vec<(f64, f64)>,
}

/// Draws a line chart (points joined by lines, one colour per series) as SVG.
///
/// `x_labels`, if given, names integer x positions (0, 1, 2, …) instead of numbers; `log_y` uses a
/// logarithmic y axis (all y must be > 0).
pub fn line_chart(
    path: &Path,
    title: &str,
    x_desc: &str,
    y_desc: &str,
    x_labels: Option<&[&str]>,
    log_y: bool,
    series: &[Series],
) -> Result<(), String> {
    use plotters::prelude::*;
    let err = |e: &dyn std::fmt::Display| format!("drawing {}: {e}", path.display());
    let pts = series.iter().flat_map(|s| s.points.iter());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in pts {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    if x0 > x1 {
        return Err(format!("drawing {}: no points", path.display()));
    }
    if x_labels.is_some() {
        x0 -= 0.3;
        x1 += 0.3;
    }
    if x1 <= x0 {
        x1 = x0 + 1.0;
    }
    let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut b = ChartBuilder::on(&root);
    b.caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70);
    let names: Vec<String> = x_labels
        .unwrap_or(&[])
        .iter()
        .map(|s| s.to_string())
        .collect();
    let fmt_x = move |x: &f64| {
        let i = x.round();
        if !names.is_empty() {
            if (x - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < names.len() {
                names[i as usize].clone()
            } else {
                String::new()
            }
        } else {
            format!("{x}")
        }
    };
    let n_labels = x_labels.map_or(10, |l| l.len() * 10 + 1);
    macro_rules! draw {
        ($chart:expr) => {{
            let mut chart = $chart;
            chart
                .configure_mesh()
                .x_desc(x_desc)
                .y_desc(y_desc)
                .x_labels(n_labels)
                .disable_x_mesh()
                .x_label_formatter(&fmt_x)
                .draw()
                .map_err(|e| err(&e))?;
            for (i, s) in series.iter().enumerate() {
                let c = Palette99::pick(i).to_rgba();
                chart
                    .draw_series(LineSeries::new(s.points.iter().copied(), c.stroke_width(2)))
                    .map_err(|e| err(&e))?
                    .label(s.label.clone())
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2))
                    });
                chart
                    .draw_series(s.points.iter().map(|&p| Circle::new(p, 3, c.filled())))
                    .map_err(|e| err(&e))?;
            }
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .position(SeriesLabelPosition::UpperLeft)
                .draw()
                .map_err(|e| err(&e))?;
        }};
    }
    if log_y {
        let (lo, hi) = (y0.max(1e-9) / 1.5, y1.max(1e-9) * 1.5);
        draw!(b
            .build_cartesian_2d(x0..x1, (lo..hi).log_scale())
            .map_err(|e| err(&e))?);
    } else {
        let hi = if y1 > 0.0 { y1 * 1.1 } else { 1.0 };
        draw!(b
            .build_cartesian_2d(x0..x1, 0f64.min(y0)..hi)
            .map_err(|e| err(&e))?);
    }
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

/// Draws a grouped bar chart as SVG: one group per entry of `labels`, one bar per series (`(name, values)`,
/// one value per label).
pub fn bar_chart(
    path: &Path,
    title: &str,
    y_desc: &str,
    labels: &[String],
    series: &[(&str, Vec<f64>)],
) -> Result<(), String> {
    use plotters::prelude::*;
    let err = |e: &dyn std::fmt::Display| format!("drawing {}: {e}", path.display());
    let ymax = series
        .iter()
        .flat_map(|(_, v)| v.iter().copied())
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max)
        .max(1e-9)
        * 1.15;
    let root = SVGBackend::new(path, (900, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..labels.len().max(1) as f64, 0f64..ymax)
        .map_err(|e| err(&e))?;
    let names = labels.to_vec();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(labels.len() * 2 + 1)
        .x_label_formatter(&move |x| {
            let i = x.floor() as usize;
            if (x - x.floor() - 0.5).abs() < 0.01 && i < names.len() {
                names[i].clone()
            } else {
                String::new()
            }
        })
        .y_desc(y_desc)
        .draw()
        .map_err(|e| err(&e))?;
    let w = 0.8 / series.len().max(1) as f64;
    for (si, (name, vals)) in series.iter().enumerate() {
        let color = Palette99::pick(si).to_rgba();
        chart
            .draw_series(vals.iter().enumerate().map(|(i, &v)| {
                let x0 = i as f64 + 0.1 + si as f64 * w;
                let v = if v.is_finite() { v } else { 0.0 };
                Rectangle::new([(x0, 0.0), (x0 + w * 0.95, v)], color.filled())
            }))
            .map_err(|e| err(&e))?
            .label(*name)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled()));
    }
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

/// Creates `dir/name` holding `len` bytes of a fixed pseudo-random pattern, unlinks it, and returns it open
/// for reading and writing (the data lives as long as the handle).
pub fn data_file(dir: &Path, name: &str, len: u64) -> std::io::Result<std::fs::File> {
    let path = dir.join(name);
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)?;
    let _ = std::fs::remove_file(&path);
    let mut buf = vec![0u8; 1 << 20];
    let mut off = 0u64;
    while off < len {
        let n = (len - off).min(buf.len() as u64) as usize;
        for (i, b) in buf[..n].iter_mut().enumerate() {
            let x = (off + i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            *b = (x >> 56) as u8;
        }
        f.write_all(&buf[..n])?;
        off += n as u64;
    }
    Ok(f)
}

/// The 1-minute load average (the development machines are shared: say how busy they were).
pub fn loadavg() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

/// CPU time used so far by this process's threads whose name (`/proc/self/task/*/comm`) starts with one of
/// `prefixes`, from each thread's `schedstat` (nanoseconds on a CPU). Covers threads the experiment did not
/// start itself: the ring's waker (`gpu-uring-waker`) and the kernel's SQPOLL thread (`iou-sqp-<pid>`), which
/// the kernel creates as a thread of this process. Threads that have exited are no longer counted, so take
/// both readings while the threads of interest are alive. `None` if `/proc` cannot be read.
pub fn threads_cpu(prefixes: &[&str]) -> Option<std::time::Duration> {
    let ns = threads_named(prefixes)?
        .map(|dir| {
            std::fs::read_to_string(dir.join("schedstat"))
                .ok()
                .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
                .unwrap_or(0)
        })
        .sum();
    Some(std::time::Duration::from_nanos(ns))
}

/// The `/proc/self/task/<tid>` folders of this process's threads whose name (`comm`) starts with one of
/// `prefixes`; `None` if `/proc` cannot be read.
fn threads_named<'a>(
    prefixes: &'a [&str],
) -> Option<impl Iterator<Item = std::path::PathBuf> + 'a> {
    let tasks = std::fs::read_dir("/proc/self/task").ok()?;
    Some(tasks.flatten().map(|e| e.path()).filter(|dir| {
        std::fs::read_to_string(dir.join("comm"))
            .is_ok_and(|comm| prefixes.iter().any(|p| comm.trim_end().starts_with(p)))
    }))
}

/// Waits (at most `limit`) until this process has no SQPOLL thread left (`iou-sqp-<pid>` in
/// `/proc/self/task/*/comm`); returns whether none is left. A dropped ring's SQPOLL thread keeps polling on a
/// core until the kernel's asynchronous teardown stops it (on the 2-core VM tens of ms after `drop`, measured
/// with `perf record -a`), so a run started at once shares the other core with it: experiments that compare
/// rings run after run settle between runs, so that each run starts with the machine the last one left quiet.
pub fn settle_sqpoll(limit: std::time::Duration) -> bool {
    let t = std::time::Instant::now();
    loop {
        if threads_named(&["iou-sqp"]).is_none_or(|mut threads| threads.next().is_none()) {
            return true;
        }
        if t.elapsed() >= limit {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// CPU time of the whole process so far (user + system, every thread, `getrusage(RUSAGE_SELF)`).
pub fn process_cpu() -> std::time::Duration {
    // SAFETY: an all-zero `rusage` is a valid out-parameter.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a valid out-parameter for the duration of the call.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return std::time::Duration::ZERO;
    }
    let tv = |t: libc::timeval| {
        std::time::Duration::from_secs(t.tv_sec as u64)
            + std::time::Duration::from_micros(t.tv_usec as u64)
    };
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Formats a rate with an SI suffix (`1.23 M`).
pub fn si(v: f64) -> String {
    let (d, s) = if v >= 1e9 {
        (1e9, " G")
    } else if v >= 1e6 {
        (1e6, " M")
    } else if v >= 1e3 {
        (1e3, " k")
    } else {
        (1.0, " ")
    };
    format!("{:.2}{s}", v / d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_csv_json_agree() {
        let rows = vec![
            Record::new()
                .text("name", "a,b")
                .int("n", 3)
                .float("x", 1.5, 2),
            Record::new()
                .text("name", "c")
                .int("n", 10)
                .pass("ok", true),
        ];
        let t = render_table(&rows);
        assert!(t.starts_with("name   n     x  ok\n"), "{t}");
        assert!(t.ends_with("c     10        pass\n"), "{t}");
        let csv = render_csv(&rows);
        assert_eq!(csv, "name,n,x,ok\n\"a,b\",3,1.50,\nc,10,,pass\n");
        let j = rows[0].to_json(&[("experiment", "e")]);
        assert_eq!(j, r#"{"experiment":"e","name":"a,b","n":3,"x":1.5}"#);
    }

    #[test]
    fn percentiles_within_a_tenth_of_a_percent_of_nearest_rank() {
        let v: Vec<f64> = (1..=1000).map(|i| i as f64 * 1.5).collect();
        let p = Percentiles::of(&v);
        let near = |got: f64, want: f64| got >= want && got <= want * 1.001;
        assert!(
            near(p.p50, 750.0) && near(p.p99, 1485.0) && near(p.p999, 1498.5),
            "{p:?}"
        );
        assert_eq!((p.min, p.max, p.n), (1.5, 1500.0, 1000));
        assert_eq!(p.mean, 750.75);
        assert_eq!(Percentiles::of(&[]).p99, 0.0);
    }

    #[test]
    fn chart_writes_svg() {
        let dir = std::env::temp_dir().join(format!("gpu-uring-exp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("c.svg");
        line_chart(
            &p,
            "t",
            "x",
            "y",
            Some(&["p50", "p99"]),
            true,
            &[Series {
                label: "s".into(),
                points: vec![(0.0, 1.0), (1.0, 10.0)],
            }],
        )
        .unwrap();
        assert!(std::fs::read_to_string(&p).unwrap().contains("<svg"));
        let _ = std::fs::remove_dir_all(dir);
    }
}
