//! Measures the executor's per-step overhead: `/bin/true` in a busybox rootfs over a fresh overlay
//! (new upper and work directories per run, as a build step gets), against a plain fork+exec.
//!
//! ```sh
//! cargo run --release -p stagecraft-exec --example overhead -- [RUNS] [none|sandbox] # as root
//! ```
//!
//! `RUNS` defaults to 50; `none` runs with `Network::None` (a fresh network namespace per step),
//! `sandbox` with `Network::Sandbox` (one `NetworkSandbox` for all the steps, as a build has; its
//! start and teardown are timed too).
//!
//! It is also the smallest complete user of the crate: note the `helper_main` dispatch first thing
//! in `main`, and `HelperCommand::current_exe()`.
// An example program: it prints its measurements.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::error::Error;
use std::ffi::OsString;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use stagecraft_exec::{
    ExecSpec, Executor, HELPER_ARG, HelperCommand, Network, NetworkSandbox, Rootfs,
};

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == HELPER_ARG) {
        stagecraft_exec::helper_main(&args[2..]);
    }
    let runs: usize = match args.get(1).and_then(|a| a.to_str()) {
        Some(n) => n.parse()?,
        None => 50,
    };
    let network = match args.get(2).and_then(|a| a.to_str()) {
        Some("none") => Network::None,
        Some("sandbox") => Network::Sandbox,
        _ => Network::Host,
    };

    let scratch = tempfile::tempdir()?;
    let lower = scratch.path().join("busybox");
    make_busybox_rootfs(&lower)?;
    let mut executor = Executor::new(HelperCommand::current_exe());
    let mut sandbox = None;
    if network == Network::Sandbox {
        let start = Instant::now();
        let started = std::sync::Arc::new(NetworkSandbox::start(executor.helper())?);
        println!(
            "NetworkSandbox::start (namespace + slirp4netns ready): {:.2} ms",
            start.elapsed().as_secs_f64() * 1000.0
        );
        executor = executor.with_network_sandbox(std::sync::Arc::clone(&started));
        sandbox = Some(started);
    }

    let mut baseline = Vec::with_capacity(runs);
    for _ in 0..runs {
        let start = Instant::now();
        let status = Command::new("/bin/true").status()?;
        baseline.push(start.elapsed());
        if !status.success() {
            return Err("/bin/true failed".into());
        }
    }

    let mut executor_times = Vec::with_capacity(runs);
    for i in 0..runs {
        let step = scratch.path().join(format!("step-{i}"));
        std::fs::create_dir_all(step.join("upper"))?;
        std::fs::create_dir_all(step.join("work"))?;
        let mut spec = ExecSpec::new(
            Rootfs::Overlay {
                lower_dirs: vec![lower.clone()],
                upper_dir: step.join("upper"),
                work_dir: step.join("work"),
            },
            vec!["/bin/true".into()],
        );
        spec.network = network;
        let start = Instant::now();
        let status = executor.run(&spec, &mut |_, _| {})?;
        executor_times.push(start.elapsed());
        if !status.success() {
            return Err(format!("/bin/true in the container: {status}").into());
        }
        std::fs::remove_dir_all(&step)?;
    }

    if let Some(sandbox) = sandbox {
        drop(executor);
        let start = Instant::now();
        drop(sandbox);
        println!(
            "NetworkSandbox teardown (stack exited and reaped): {:.2} ms",
            start.elapsed().as_secs_f64() * 1000.0
        );
    }
    report("fork+exec /bin/true (host)", &mut baseline);
    report(
        &format!("Executor::run /bin/true (overlay, namespaces, network {network:?})"),
        &mut executor_times,
    );
    Ok(())
}

/// A rootfs with the host's static busybox as `/bin/busybox`, `/bin/true` and `/bin/sh`.
fn make_busybox_rootfs(dir: &Path) -> Result<(), Box<dyn Error>> {
    let busybox = Path::new("/bin/busybox");
    if !busybox.exists() {
        return Err("needs a static /bin/busybox: apt-get install busybox-static".into());
    }
    for sub in ["bin", "etc", "proc", "dev", "sys", "tmp"] {
        std::fs::create_dir_all(dir.join(sub))?;
    }
    std::fs::copy(busybox, dir.join("bin/busybox"))?;
    for applet in ["true", "sh"] {
        std::os::unix::fs::symlink("busybox", dir.join("bin").join(applet))?;
    }
    std::fs::write(dir.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n")?;
    std::fs::write(dir.join("etc/group"), "root:x:0:\n")?;
    Ok(())
}

fn report(what: &str, times: &mut [Duration]) {
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let n = times.len();
    let mean = times.iter().map(|d| ms(*d)).sum::<f64>() / n as f64;
    println!(
        "{what}: n={n} min={:.2} ms median={:.2} ms mean={mean:.2} ms p90={:.2} ms max={:.2} ms",
        ms(times[0]),
        ms(times[n / 2]),
        ms(times[(n * 9 / 10).min(n - 1)]),
        ms(times[n - 1]),
    );
}
