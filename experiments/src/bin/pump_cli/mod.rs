//! A minimal local copy of the experiments' common CLI and output (`--device`, `--json`, `--out`; table, JSON
//! rows, CSV, SVG bar charts), used by `megakernel_stream` and `pump_latency` until the shared
//! `gpu_uring_experiments` module lands; then these helpers fold into it.
#![allow(dead_code)]

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use gpu_uring::backend::{self, DeviceSelector};
use plotters::prelude::*;
use serde_json::{Map, Value};

/// The flags every experiment accepts.
#[derive(Debug, Clone, clap::Args)]
pub struct Common {
    /// Device to run on: auto, cpu, vulkan[:NAME], hip, cuda.
    #[arg(long, default_value = "auto")]
    pub device: DeviceSelector,
    /// Print one JSON object per result row on stdout instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Directory for CSV and SVG output (default target/experiments/<name>).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

impl Common {
    /// The output directory, created.
    pub fn out_dir(&self, name: &str) -> PathBuf {
        let d = self
            .out
            .clone()
            .unwrap_or_else(|| Path::new("target/experiments").join(name));
        std::fs::create_dir_all(&d).unwrap_or_else(|e| panic!("creating {}: {e}", d.display()));
        d
    }

    /// Resolves the device. The io_queue pump runs on the CPU reference device only for now; `auto` says
    /// why each better device was skipped; asking for another device explicitly is an error.
    pub fn device_name(&self) -> Result<String, String> {
        match &self.device {
            DeviceSelector::Cpu => Ok("cpu (CPU reference device)".into()),
            DeviceSelector::Auto => {
                let (_, skipped) = backend::open(&DeviceSelector::Auto).map_err(|e| e.to_string())?;
                for s in skipped {
                    eprintln!("note: {s}");
                }
                Ok("cpu (CPU reference device; auto: no GPU backend in this build)".into())
            }
            other => Err(format!(
                "--device {other}: the io_queue pump has only the CPU reference device in this build \
                 (the Vulkan and HIP device sides come with their backends); use --device cpu"
            )),
        }
    }
}

/// A result row: ordered (column, value) pairs.
pub type Row = Vec<(&'static str, Value)>;

/// Prints rows as a table (or JSON lines) and writes `<dir>/<file>.csv`.
pub fn emit(common: &Common, dir: &Path, file: &str, rows: &[Row]) {
    if rows.is_empty() {
        return;
    }
    let cols: Vec<&str> = rows[0].iter().map(|(k, _)| *k).collect();
    let cell = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() => format!("{f:.3}"),
            _ => n.to_string(),
        },
        other => other.to_string(),
    };
    if common.json {
        for r in rows {
            let m: Map<String, Value> = r.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
            println!("{}", Value::Object(m));
        }
    } else {
        let cells: Vec<Vec<String>> = rows
            .iter()
            .map(|r| r.iter().map(|(_, v)| cell(v)).collect())
            .collect();
        let widths: Vec<usize> = cols
            .iter()
            .enumerate()
            .map(|(i, c)| {
                cells
                    .iter()
                    .map(|r| r[i].len())
                    .max()
                    .unwrap_or(0)
                    .max(c.len())
            })
            .collect();
        let line = |vals: Vec<&str>| {
            let mut s = String::new();
            for (v, w) in vals.iter().zip(&widths) {
                let _ = write!(s, "{v:>w$}  ");
            }
            println!("{}", s.trim_end());
        };
        line(cols.clone());
        for r in &cells {
            line(r.iter().map(|s| s.as_str()).collect());
        }
    }
    let mut csv = cols.join(",") + "\n";
    for r in rows {
        let vals: Vec<String> = r
            .iter()
            .map(|(_, v)| {
                let s = cell(v);
                if s.contains([',', '"', '\n']) {
                    format!("\"{}\"", s.replace('"', "\"\""))
                } else {
                    s
                }
            })
            .collect();
        csv += &(vals.join(",") + "\n");
    }
    let path = dir.join(format!("{file}.csv"));
    std::fs::write(&path, csv).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    eprintln!("wrote {}", path.display());
}

/// A grouped bar chart: one group per label, one bar per series.
pub fn bar_chart(
    path: &Path,
    title: &str,
    y_label: &str,
    labels: &[String],
    series: &[(&str, Vec<f64>)],
) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::new(path, (900, 500)).into_drawing_area();
    root.fill(&WHITE)?;
    let ymax = series
        .iter()
        .flat_map(|(_, v)| v.iter().copied())
        .fold(0.0f64, f64::max)
        .max(1e-9)
        * 1.15;
    let n = labels.len() as f64;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..n, 0f64..ymax)?;
    let labels_c = labels.to_vec();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(labels.len() * 2 + 1)
        .x_label_formatter(&move |x| {
            let i = x.floor() as usize;
            if (x - x.floor() - 0.5).abs() < 0.01 && i < labels_c.len() {
                labels_c[i].clone()
            } else {
                String::new()
            }
        })
        .y_desc(y_label)
        .draw()?;
    let k = series.len() as f64;
    let w = 0.8 / k;
    for (si, (name, vals)) in series.iter().enumerate() {
        let color = Palette99::pick(si).to_rgba();
        chart
            .draw_series(vals.iter().enumerate().map(|(i, &v)| {
                let x0 = i as f64 + 0.1 + si as f64 * w;
                Rectangle::new([(x0, 0.0), (x0 + w * 0.95, v)], color.filled())
            }))?
            .label(*name)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled()));
    }
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .draw()?;
    root.present()?;
    eprintln!("wrote {}", path.display());
    Ok(())
}

/// Percentile `p` (0..=100) of sorted samples.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Writes `len` pattern bytes to a fresh file in `dir` and returns it open (read/write), unlinked.
pub fn data_file(dir: &Path, name: &str, len: u64) -> std::fs::File {
    use std::io::Write;
    let path = dir.join(name);
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("creating {}: {e}", path.display()));
    let _ = std::fs::remove_file(&path);
    let mut buf = vec![0u8; 1 << 20];
    let mut off = 0u64;
    while off < len {
        let n = (len - off).min(buf.len() as u64) as usize;
        for (i, b) in buf[..n].iter_mut().enumerate() {
            let x = (off + i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            *b = (x >> 56) as u8;
        }
        f.write_all(&buf[..n]).unwrap();
        off += n as u64;
    }
    f
}
