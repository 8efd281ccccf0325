//! The experiment binaries' command-line contract: device selection, --json, --out, exit statuses, and
//! device_print's output checked line by line. Small sizes: these run in `cargo test`.

use std::process::Command;

fn bin(name: &str) -> Command {
    let path = match name {
        "device_print" => env!("CARGO_BIN_EXE_device_print"),
        "cpu_mt" => env!("CARGO_BIN_EXE_cpu_mt"),
        "ring_latency" => env!("CARGO_BIN_EXE_ring_latency"),
        other => panic!("unknown binary {other}"),
    };
    Command::new(path)
}

fn tmpdir(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("gpu-uring-cli-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn device_print_to_a_file_verifies_and_writes_csv() {
    let dir = tmpdir("file");
    let file = dir.join("lines.txt");
    let out = bin("device_print")
        .args([
            "--device",
            "cpu",
            "--lanes",
            "4",
            "--lines",
            "200",
            "--verify",
            "--print-to",
        ])
        .arg(&file)
        .arg("--out")
        .arg(&dir)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("device: CPU reference device"), "{err}");
    assert!(err.contains("verify: 800 lines read back"), "{err}");
    assert_eq!(std::fs::read_to_string(&file).unwrap().lines().count(), 800);
    let csv = std::fs::read_to_string(dir.join("device_print.csv")).unwrap();
    assert!(csv.starts_with("device,target,lanes,lines,bytes,"), "{csv}");
    assert!(csv.contains("\ncpu,offset,4,800,"), "{csv}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn device_print_stdout_is_only_lines() {
    let dir = tmpdir("pipe");
    let out = bin("device_print")
        .args(["--lanes", "3", "--lines", "50", "--out"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut next = [0u32; 3];
    for line in text.lines() {
        let lane: usize = line["lane=".len()..]
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(
            line,
            gpu_uring::backend::expected_line(lane as u32, next[lane])
        );
        next[lane] += 1;
    }
    assert_eq!(next, [50; 3]);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn json_mode_prints_one_object_per_row() {
    let dir = tmpdir("json");
    let out = bin("device_print")
        .args(["--json", "--lanes", "2", "--lines", "10", "--out"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let rows: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 1, "{text}");
    assert_eq!(rows[0]["experiment"], "device_print");
    assert_eq!(rows[0]["lines"], 20);
    assert_eq!(rows[0]["failed"], 0);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn unavailable_devices_say_why_and_exit_2() {
    // A backend present on the machine running the tests is not checked: this is about what the others say.
    for (name, dev) in [
        ("device_print", "cuda"),
        ("device_print", "hip"),
        ("cpu_mt", "cuda"),
        ("ring_latency", "hip"),
    ] {
        let mut cmd = bin(name);
        cmd.args(["--device", dev]);
        if name == "device_print" {
            cmd.args(["--lanes", "1", "--lines", "1"]);
        }
        let out = cmd.output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        if err.contains("unavailable: ") {
            assert_eq!(out.status.code(), Some(2), "{name} --device {dev}: {err}");
            assert!(
                err.contains(&format!("error: --device {dev}: {dev} unavailable: ")),
                "{err}"
            );
        }
    }
    let out = bin("device_print")
        .args(["--device", "tpu"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("expected auto, cpu"));
}

#[test]
fn auto_falls_back_to_cpu_and_says_why() {
    let dir = tmpdir("auto");
    let out = bin("cpu_mt")
        .args([
            "--threads",
            "2",
            "--ops",
            "200",
            "--bursts",
            "1",
            "--burst",
            "8",
            "--gap-ms",
            "15",
            "--out",
        ])
        .arg(&dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("[--device auto]") && text.contains("skipped (fell back)"),
        "{text}"
    );
    assert!(dir.join("cpu_mt.csv").exists());
    let _ = std::fs::remove_dir_all(dir);
}
