//! The experiment binaries' command-line contract: device selection, --json, --out, exit statuses, and
//! device_print's output checked line by line. Small sizes: these run in `cargo test`.

use std::process::Command;

fn bin(name: &str) -> Command {
    let path = match name {
        "device_print" => env!("CARGO_BIN_EXE_device_print"),
        "cpu_mt" => env!("CARGO_BIN_EXE_cpu_mt"),
        "ring_latency" => env!("CARGO_BIN_EXE_ring_latency"),
        "print_latency" => env!("CARGO_BIN_EXE_print_latency"),
        "device_no_poll" => env!("CARGO_BIN_EXE_device_no_poll"),
        "device_check" => env!("CARGO_BIN_EXE_device_check"),
        "device_edit_buffer" => env!("CARGO_BIN_EXE_device_edit_buffer"),
        "memory_placement" => env!("CARGO_BIN_EXE_memory_placement"),
        "lane_work" => env!("CARGO_BIN_EXE_lane_work"),
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
fn device_print_by_default_prints_a_short_demo() {
    let dir = tmpdir("demo");
    let out = bin("device_print").arg("--out").arg(&dir).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8(out.stdout).unwrap().lines().count(), 20);
    let help = bin("device_print").arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.contains("--stress") && help.contains("X = (L << 32) | K"),
        "{help}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn device_print_refuses_bad_arguments_before_the_run() {
    let out = bin("device_print").args(["--lanes", "0"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    // --verify needs a regular file: stdout is a pipe here.
    let out = bin("device_print")
        .args(["--device", "cpu", "--verify"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("must go to a regular file"), "{err}");
    assert!(out.stdout.is_empty() && !err.contains("printing "), "{err}");
}

#[test]
fn device_print_past_its_timeout_still_prints_its_summary() {
    let dir = tmpdir("timeout");
    let file = dir.join("lines.txt");
    let out = bin("device_print")
        .args([
            "--device",
            "cpu",
            "--lanes",
            "4",
            "--lines",
            "1000000",
            "--timeout-s",
            "0",
            "--verify",
            "--print-to",
        ])
        .arg(&file)
        .arg("--out")
        .arg(&dir)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("timed out after --timeout-s 0"), "{err}");
    let printed = std::fs::read_to_string(&file).unwrap().lines().count();
    assert!(
        err.contains(&format!("lines printed {printed} of 4000000")),
        "{printed}: {err}"
    );
    assert!(
        err.contains(&format!("verify: {printed} lines read back")),
        "{err}"
    );
    let csv = std::fs::read_to_string(dir.join("device_print.csv")).unwrap();
    assert!(csv.contains(&format!(",{},", 4_000_000 - printed)), "{csv}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn device_print_names_the_errno_and_does_not_count_failed_lines_as_printed() {
    let dir = tmpdir("full");
    let out = bin("device_print")
        .args([
            "--device",
            "cpu",
            "--lanes",
            "2",
            "--lines",
            "3",
            "--print-to",
            "/dev/full",
            "--out",
        ])
        .arg(&dir)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("ENOSPC (No space left on device)"), "{err}");
    assert!(!err.contains("lines printed 6 of 6"), "{err}");
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
    for (name, dev) in [("device_print", "cuda"), ("device_print", "hip")] {
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
fn experiments_offer_only_the_devices_they_run_on() {
    // CPU threads as lanes by definition: no GPU device is offered, in --help or on the command line.
    for (name, dev) in [("cpu_mt", "cuda"), ("ring_latency", "vulkan")] {
        let out = bin(name).args(["--device", dev]).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name} --device {dev}: {err}");
        assert!(
            err.contains("drives the ring from CPU threads only"),
            "{err}"
        );
        let help = bin(name).arg("--help").output().unwrap();
        let help = String::from_utf8_lossy(&help.stdout);
        assert!(help.contains("Device to run on: auto or cpu"), "{help}");
    }
    let help = bin("memory_placement").arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        !help.contains(", cpu,") && help.contains("vulkan[:NAME]"),
        "{help}"
    );
    for name in ["device_print", "cpu_mt", "memory_placement", "ring_latency"] {
        let out = bin(name).arg("-V").output().unwrap();
        assert!(out.status.success(), "{name} -V");
        assert!(
            String::from_utf8_lossy(&out.stdout).starts_with(name),
            "{name} -V"
        );
    }
}

#[test]
fn auto_falls_back_to_cpu_and_says_why() {
    let dir = tmpdir("auto");
    let run = |verbose: bool| {
        let mut cmd = bin("cpu_mt");
        if verbose {
            cmd.arg("-v");
        }
        let out = cmd
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
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    };
    // With -v the reasons are always given in full.
    let text = run(true);
    assert!(
        text.contains("[--device auto]") && text.contains("skipped (fell back)"),
        "{text}"
    );
    assert!(dir.join("cpu_mt.csv").exists());
    // The same fallback again, without -v: one short note, not the reasons again.
    let text = run(false);
    assert!(text.contains("[--device auto]"), "{text}");
    if !auto_is_cpu() {
        let _ = std::fs::remove_dir_all(dir);
        return;
    }
    let again = run(false);
    assert!(
        again.contains("(fell back: ") && !again.contains("skipped (fell back)"),
        "{again}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn lane_work_reports_the_lanes_own_work_beside_a_plain_ring() {
    let dir = tmpdir("lane-work");
    let rows = run_json(
        "lane_work",
        &["--device", "cpu", "--ops", "2000", "--rounds", "2"],
        &dir,
    );
    let paths: Vec<_> = rows.iter().map(|r| r["path"].as_str().unwrap()).collect();
    assert_eq!(
        paths,
        [
            "device-lane waited",
            "device-lane fire-and-forget",
            "plain ring",
            "plain ring + lane RMWs"
        ],
        "{rows:?}"
    );
    for r in &rows {
        assert_eq!(r["rounds"], 2, "{r}");
        assert!(r["ns_per_op"].as_f64().unwrap() > 0.0, "{r}");
    }
    for r in &rows[..2] {
        assert_eq!(r["host_rmw_per_op"], 0.0, "{r}");
        assert!(r["local_rmw_per_op"].as_f64().unwrap() >= 1.0, "{r}");
    }
    assert_eq!(rows[2]["extra_ns"], 0.0);
    // The added RMWs are the waited lane's, one for one.
    assert_eq!(
        rows[3]["local_rmw_per_op"], rows[0]["local_rmw_per_op"],
        "{rows:?}"
    );
    assert!(dir.join("lane_work.csv").exists());
    let _ = std::fs::remove_dir_all(dir);
}

fn json_rows(stdout: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// Runs `name` with `args`, `--json` and `--out dir`; it must succeed. Returns its JSON rows.
fn run_json(name: &str, args: &[&str], dir: &std::path::Path) -> Vec<serde_json::Value> {
    let out = bin(name)
        .args(args)
        .arg("--json")
        .arg("--out")
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{name} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    json_rows(&out.stdout)
}

/// Whether `backend` opens on this machine (a Vulkan variant of a smoke test runs only then).
fn present(backend: &str) -> bool {
    let sel = backend.parse().unwrap();
    match gpu_uring::backend::open(&sel) {
        Ok(_) => true,
        Err(e) => {
            eprintln!("SKIP {backend} variant: {e}");
            false
        }
    }
}

/// Whether `--device auto` falls back to the CPU reference device here (it takes only real GPUs): the device
/// it opens has host threads as lanes.
fn auto_is_cpu() -> bool {
    let (dev, _) = gpu_uring::backend::open(&gpu_uring::backend::DeviceSelector::Auto).unwrap();
    dev.info().caps.lanes_are_host_threads
}

#[test]
fn print_latency_compares_three_paths() {
    let dir = tmpdir("print-latency");
    let out = bin("print_latency")
        .args([
            "--device",
            "cpu",
            "--json",
            "--samples",
            "200",
            "--lanes",
            "3",
            "--lines",
            "100",
            "--out",
        ])
        .arg(&dir)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("device: CPU reference device"), "{err}");
    let rows = json_rows(&out.stdout);
    let paths = |table: &str| -> Vec<String> {
        rows.iter()
            .filter(|r| r["table"] == table)
            .map(|r| r["path"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(paths("latency"), ["direct", "rpc", "native"]);
    assert_eq!(paths("throughput"), ["direct", "rpc", "native"]);
    let mut ratios: Vec<&str> = rows
        .iter()
        .filter(|r| r["table"] == "ratios")
        .map(|r| r["ratio"].as_str().unwrap())
        .collect();
    ratios.sort_unstable();
    assert_eq!(ratios, ["direct/native", "direct/rpc"]);
    for r in rows.iter().filter(|r| r["table"] == "ratios") {
        assert_eq!(r["rounds"], 1, "{r}");
        assert!(r["median"].as_f64().unwrap() > 0.0, "{r}");
    }
    for r in rows.iter().filter(|r| r["table"] != "ratios") {
        assert_eq!(r["failed"], 0, "{r}");
        if r["table"] == "throughput" {
            assert_eq!(r["lines"], 300, "{r}");
        } else {
            assert_eq!(r["samples"], 200, "{r}");
        }
    }
    for f in [
        "latency.csv",
        "throughput.csv",
        "latency.svg",
        "throughput.svg",
        "helper_cpu.svg",
    ] {
        assert!(dir.join(f).exists(), "{f}");
    }
    // --print-to: every line of every path lands in the file.
    let file = dir.join("lines.txt");
    let out = bin("print_latency")
        .args([
            "--device",
            "cpu",
            "--samples",
            "20",
            "--lanes",
            "2",
            "--lines",
            "10",
            "--print-to",
        ])
        .arg(&file)
        .arg("--out")
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // 3 paths x (20 samples + 10 warm-up) single-lane lines + 3 paths x 2 lanes x 10 lines.
    let n = std::fs::read_to_string(&file).unwrap().lines().count();
    assert_eq!(n, 3 * 30 + 3 * 20);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn device_no_poll_checks_every_completion() {
    let dir = tmpdir("no-poll");
    let rows = run_json(
        "device_no_poll",
        &[
            "--device", "cpu", "--lanes", "4", "--ops", "3", "--rounds", "5",
        ],
        &dir,
    );
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["sqes"], 60);
    assert_eq!(rows[0]["enter_calls"], 5);
    assert_eq!(rows[0]["verified"], true);
    assert!(dir.join("rounds.csv").exists());
    // More SQEs per dispatch than the SQ holds is refused up front.
    let out = bin("device_no_poll")
        .args(["--device", "cpu", "--lanes", "64", "--ops", "8", "--out"])
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("do not fit --sq-entries"));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn device_check_lists_every_backend() {
    let dir = tmpdir("check");
    let rows = run_json("device_check", &["--lanes", "3"], &dir);
    let backends: Vec<&str> = rows
        .iter()
        .map(|r| r["backend"].as_str().unwrap())
        .collect();
    // cpu, then "vulkan" (no loader or no device) or one "vulkan:<index>" per physical device, then hip, cuda.
    let n = backends.len();
    assert_eq!(backends[0], "cpu");
    assert_eq!(backends[n - 2..], ["hip", "cuda"]);
    assert!(
        backends[1..n - 2].iter().all(|b| b.starts_with("vulkan")),
        "{backends:?}"
    );
    assert_eq!(rows[0]["status"], "usable");
    assert_eq!(rows[0]["passed"], true);
    for r in &rows[1..] {
        let status = r["status"].as_str().unwrap();
        assert!(status == "usable" || status == "unavailable", "{r}");
        if status == "unavailable" {
            assert!(!r["reason"].as_str().unwrap().is_empty(), "{r}");
        } else {
            // A usable device must pass its checks (lavapipe does in CI).
            assert_eq!(r["passed"], true, "{r}");
        }
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn gpu_only_experiments_skip_or_refuse_the_cpu_device() {
    for name in ["device_edit_buffer", "memory_placement"] {
        let dir = tmpdir(name);
        let cpu = bin(name)
            .args(["--device", "cpu", "--out"])
            .arg(&dir)
            .output()
            .unwrap();
        assert_eq!(cpu.status.code(), Some(2), "{name}");
        assert!(
            String::from_utf8_lossy(&cpu.stderr).contains("needs a GPU-style device"),
            "{name}"
        );
        if auto_is_cpu() {
            let auto = bin(name).arg("--out").arg(&dir).output().unwrap();
            let text = String::from_utf8_lossy(&auto.stdout);
            assert_eq!(auto.status.code(), Some(0), "{name}: {text}");
            assert!(text.contains("skip: ") && text.contains("vulkan"), "{text}");
        }
        let _ = std::fs::remove_dir_all(dir);
    }
}

#[test]
fn device_edit_buffer_on_vulkan() {
    if !present("vulkan") {
        return;
    }
    let dir = tmpdir("edit-vk");
    let rows = run_json(
        "device_edit_buffer",
        &["--device", "vulkan", "--lanes", "4", "--steps", "50"],
        &dir,
    );
    assert_eq!(rows[0]["handshakes"], 200);
    assert_eq!(rows[0]["seen_by_host"], 200);
    assert_eq!(rows[0]["verified"], true);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn print_latency_on_vulkan() {
    if !present("vulkan") {
        return;
    }
    let dir = tmpdir("print-latency-vk");
    let file = dir.join("lines.txt");
    let out = bin("print_latency")
        .args([
            "--device",
            "vulkan",
            "--json",
            "--lanes",
            "3",
            "--lines",
            "20",
            "--print-to",
        ])
        .arg(&file)
        .arg("--out")
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows = json_rows(&out.stdout);
    let ratios: Vec<&str> = rows
        .iter()
        .filter(|r| r["table"] == "ratios")
        .map(|r| r["ratio"].as_str().unwrap())
        .collect();
    assert_eq!(ratios, ["direct/rpc"]);
    let rows: Vec<_> = rows.iter().filter(|r| r["table"] != "ratios").collect();
    let paths: Vec<&str> = rows.iter().map(|r| r["path"].as_str().unwrap()).collect();
    assert_eq!(paths, ["direct", "rpc"]);
    for r in &rows {
        assert_eq!(
            (r["lines"].as_u64(), r["failed"].as_u64()),
            (Some(60), Some(0)),
            "{r}"
        );
    }
    // Both paths printed every line, byte for byte what format_print_line makes (the GLSL RPC client
    // formats its lines itself): each expected line exactly twice.
    let text = std::fs::read_to_string(&file).unwrap();
    let mut got: Vec<&str> = text.lines().collect();
    got.sort_unstable();
    let mut want: Vec<String> = (0..3u32)
        .flat_map(|l| (0..20u32).map(move |s| gpu_uring::backend::expected_line(l, s)))
        .flat_map(|l| [l.clone(), l])
        .collect();
    want.sort_unstable();
    assert_eq!(got, want);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn device_no_poll_on_vulkan() {
    if !present("vulkan") {
        return;
    }
    let dir = tmpdir("no-poll-vk");
    let rows = run_json(
        "device_no_poll",
        &["--device", "vulkan", "--lanes", "8", "--ops", "40"],
        &dir,
    );
    assert_eq!(rows[0]["sqes"], 320);
    assert_eq!(rows[0]["writes_in_file"], 320);
    // No submitter thread: the host enters only between dispatches, once per dispatch that published SQEs
    // (the last dispatch only reaps and finishes).
    let (enters, dispatches) = (
        rows[0]["enter_calls"].as_u64().unwrap(),
        rows[0]["dispatches"].as_u64().unwrap(),
    );
    assert!(
        enters >= 1 && enters < dispatches,
        "{enters} enters, {dispatches} dispatches"
    );
    assert!(dir.join("rounds.csv").exists());
    assert_eq!(rows[0]["verified"], true);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn memory_placement_on_vulkan() {
    if !present("vulkan") {
        return;
    }
    let dir = tmpdir("placement-vk");
    let rows = run_json(
        "memory_placement",
        &[
            "--device",
            "vulkan",
            "--mib",
            "1",
            "--accesses",
            "2000",
            "--repeat",
            "1",
        ],
        &dir,
    );
    let places: Vec<&str> = rows
        .iter()
        .map(|r| r["placement"].as_str().unwrap())
        .collect();
    assert_eq!(places, ["device-local", "host-visible", "imported host"]);
    assert_eq!(rows[2]["chase_checked"], "pass");
    let _ = std::fs::remove_dir_all(dir);
}
