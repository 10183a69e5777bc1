//! The network of RUN steps, end to end: by default each build gets one private network
//! namespace (lo and the tap device of its user-mode stack) with outbound access and DNS, and
//! neither the host's interfaces nor its loopback services; the host's network is the
//! `network.host` entitlement. The servers the steps try to reach run in this test process, on
//! loopback or in a network namespace a test creates: no traffic leaves the machine.
// The test enters namespaces of its own (unshare) to set up what it checks.
#![allow(unsafe_code)]

mod common;

use common::{Machine, busybox_layout};
use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;

/// What the test servers answer, and how a step proves it reached one.
const REACHED: &str = "REACHED";

/// Words the build prints when RUN falls back to the host's network.
const FALLBACK: &str = "network sandbox could not start";

/// A TCP server in this process that answers every connection with [`REACHED`]. It listens
/// before this returns, so a build started afterwards finds it.
fn tcp_server(bind: &str) -> SocketAddr {
    let listener = TcpListener::bind(bind).unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let _ = writeln!(stream, "{REACHED}");
        }
    });
    addr
}

/// Saves `tag`'s root file system under `dir/name` and returns it.
fn rootfs(machine: &Machine, tag: &str, dir: &Path, name: &str) -> PathBuf {
    let rootfs = dir.join(name);
    machine
        .stagecraft()
        .args(["save", "--format", "dir", tag, "-o"])
        .arg(&rootfs)
        .assert()
        .success();
    rootfs
}

fn read(rootfs: &Path, file: &str) -> String {
    std::fs::read_to_string(rootfs.join(file)).unwrap()
}

fn run_ok(command: &mut Command) {
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn run_gets_a_private_network_without_the_hosts_interfaces_or_loopback_services() {
    let dir = tempfile::tempdir().unwrap();
    let busybox = busybox_layout(dir.path());
    let server = tcp_server("127.0.0.1:0");
    // Both ways a step could reach the host's loopback: its own 127.0.0.1, and the stack's
    // gateway (which slirp4netns maps to the host's 127.0.0.1 unless told not to).
    let dockerfile = format!(
        "FROM busybox:latest\n\
         RUN readlink /proc/self/ns/net > /netns-1 && ls /sys/class/net > /interfaces && \
             ip route > /routes && cat /etc/resolv.conf > /resolv && \
             gateway=$(ip route | awk '/^default/ {{print $3}}') && \
             {{ nc -w 5 127.0.0.1 {port} </dev/null; nc -w 5 $gateway {port} </dev/null; true; }} \
             > /reach 2>&1\n\
         RUN readlink /proc/self/ns/net > /netns-2\n",
        port = server.port()
    );
    let machine = Machine::new(
        dir.path(),
        "m",
        &busybox,
        &[("Dockerfile", dockerfile.as_str())],
    );
    let (_, stderr) = machine.build(&["-t", "net:sandbox"]);
    assert!(!stderr.contains(FALLBACK), "{stderr}");
    let rootfs = rootfs(&machine, "net:sandbox", dir.path(), "rootfs");

    assert_eq!(read(&rootfs, "interfaces"), "lo\ntap0\n");
    assert!(
        read(&rootfs, "routes").starts_with("default via 10.0.2.2 dev tap0"),
        "{}",
        read(&rootfs, "routes")
    );
    let reach = read(&rootfs, "reach");
    assert!(!reach.contains(REACHED), "host loopback reached:\n{reach}");
    // Both steps in one namespace, not the host's.
    let netns = read(&rootfs, "netns-1");
    assert_eq!(read(&rootfs, "netns-2"), netns);
    let host = std::fs::read_link("/proc/self/ns/net").unwrap();
    assert_ne!(netns.trim(), host.to_str().unwrap());
    // The stack's DNS forwarder is the one nameserver.
    let nameservers: Vec<String> = read(&rootfs, "resolv")
        .lines()
        .filter(|l| l.starts_with("nameserver"))
        .map(str::to_owned)
        .collect();
    assert_eq!(nameservers, ["nameserver 10.0.2.3"]);
}

#[test]
fn the_hosts_network_is_the_network_host_entitlement() {
    let dir = tempfile::tempdir().unwrap();
    let busybox = busybox_layout(dir.path());
    let server = tcp_server("127.0.0.1:0");
    // `printf` so that the word shows only when the step ran, not in its command line.
    let dockerfile = format!(
        "FROM busybox:latest\n\
         RUN printf 'FIRST-%s\\n' RAN\n\
         RUN --network=host nc -w 5 127.0.0.1 {port} </dev/null > /reach\n",
        port = server.port()
    );
    let host_default = format!(
        "FROM busybox:latest\nRUN nc -w 5 127.0.0.1 {port} </dev/null > /reach\n",
        port = server.port()
    );
    let machine = Machine::new(
        dir.path(),
        "m",
        &busybox,
        &[
            ("Dockerfile", dockerfile.as_str()),
            ("host.Dockerfile", host_default.as_str()),
        ],
    );

    // Refused at the instruction, before any step runs.
    let output = machine
        .stagecraft()
        .args(["build", "--progress=plain"])
        .arg(&machine.context)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains("RUN --network=host: entitlement network.host is not allowed"),
        "{stderr}"
    );
    assert!(stderr.contains("Dockerfile:3:1"), "{stderr}");
    assert!(stderr.contains("--allow network.host"), "{stderr}");
    assert!(!stderr.contains("FIRST-RAN"), "a step ran:\n{stderr}");

    // Granted: the host's loopback services are reachable.
    machine.build(&["--allow", "network.host", "-t", "net:allowed"]);
    let allowed = rootfs(&machine, "net:allowed", dir.path(), "allowed");
    assert_eq!(read(&allowed, "reach"), format!("{REACHED}\n"));

    // The build's `--network=host` is the grant itself, as with buildx.
    let file = machine.context.join("host.Dockerfile");
    let file = file.to_str().unwrap();
    machine.build(&["--network=host", "-f", file, "-t", "net:host"]);
    let host = rootfs(&machine, "net:host", dir.path(), "host");
    assert_eq!(read(&host, "reach"), format!("{REACHED}\n"));

    // An unknown entitlement is an error that lists the valid ones.
    machine
        .stagecraft()
        .args(["build", "--allow", "network.hots"])
        .arg(&machine.context)
        .assert()
        .failure()
        .stderr(predicates::str::contains(
            "valid values are network.host, security.insecure",
        ));
}

/// A DNS server answering every `A` question with `answer` (and any other with no records),
/// enough for busybox's `nslookup`.
fn dns_server(bind: SocketAddr, answer: Ipv4Addr) {
    let socket = UdpSocket::bind(bind).unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        while let Ok((len, peer)) = socket.recv_from(&mut buf) {
            let query = &buf[..len];
            // The question: labels up to the root label, then type and class.
            let Some(end) = query
                .iter()
                .skip(12)
                .position(|&b| b == 0)
                .map(|i| 12 + i + 5)
            else {
                continue;
            };
            if end > len {
                continue;
            }
            let is_a = query[end - 4..end - 2] == [0, 1];
            let mut reply = query[..2].to_vec();
            // A response, recursion desired and available, no error; one question.
            reply.extend_from_slice(&[0x81, 0x80, 0, 1, 0, u8::from(is_a), 0, 0, 0, 0]);
            reply.extend_from_slice(&query[12..end]);
            if is_a {
                // The name by pointer to the question, A, IN, TTL 60, four bytes.
                reply.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
                reply.extend_from_slice(&answer.octets());
            }
            let _ = socket.send_to(&reply, peer);
        }
    });
}

#[test]
fn outbound_connections_and_dns_go_through_the_stack() {
    let dir = tempfile::tempdir().unwrap();
    let busybox = busybox_layout(dir.path());
    let machine = Machine::new(dir.path(), "m", &busybox, &[]);
    let resolv = dir.path().join("resolv.conf");
    std::fs::write(&resolv, "nameserver 10.99.0.1\nsearch stagecraft.test\n").unwrap();
    // The build runs on a thread with network and mount namespaces of its own (the process it
    // starts inherits them): its "outside world" is a veth pair holding 10.99.0.1, where a
    // server and a DNS server listen, and its resolver configuration names that DNS server.
    let stderr = std::thread::scope(|scope| {
        scope
            .spawn(|| {
                // SAFETY: no FILES flag; only this thread's namespaces change, and nothing else runs
                // on it.
                unsafe {
                    rustix::thread::unshare_unsafe(
                        rustix::thread::UnshareFlags::NEWNET | rustix::thread::UnshareFlags::NEWNS,
                    )
                }
                .unwrap();
                rustix::mount::mount_change(
                    "/",
                    rustix::mount::MountPropagationFlags::PRIVATE
                        | rustix::mount::MountPropagationFlags::REC,
                )
                .unwrap();
                rustix::mount::mount_bind(&resolv, "/etc/resolv.conf").unwrap();
                for args in [
                    "link set lo up",
                    "link add outside0 type veth peer name outside1",
                    "addr add 10.99.0.1/24 dev outside0",
                    "link set outside0 up",
                    "link set outside1 up",
                ] {
                    run_ok(Command::new("ip").args(args.split(' ')));
                }
                let server = tcp_server("10.99.0.1:0");
                dns_server("10.99.0.1:53".parse().unwrap(), Ipv4Addr::new(10, 99, 0, 7));
                let dockerfile = format!(
                    "FROM busybox:latest\n\
             RUN nc -w 5 10.99.0.1 {port} </dev/null > /outbound; \
                 nslookup service.stagecraft.test > /dns-answer; cat /etc/resolv.conf > /resolv\n",
                    port = server.port()
                );
                std::fs::create_dir_all(&machine.context).unwrap();
                std::fs::write(machine.context.join("Dockerfile"), dockerfile).unwrap();
                machine.build(&["-t", "net:outbound"]).1
            })
            .join()
            .unwrap()
    });
    assert!(!stderr.contains(FALLBACK), "{stderr}");
    let rootfs = rootfs(&machine, "net:outbound", dir.path(), "rootfs");
    assert_eq!(read(&rootfs, "outbound"), format!("{REACHED}\n"));
    let answer = read(&rootfs, "dns-answer");
    assert!(answer.contains("Address: 10.99.0.7"), "{answer}");
    // The host's search domains, the stack's nameserver.
    assert_eq!(
        read(&rootfs, "resolv"),
        "nameserver 10.0.2.3\nsearch stagecraft.test\n"
    );
}

#[test]
fn without_a_stack_steps_fall_back_to_the_hosts_network_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let busybox = busybox_layout(dir.path());
    let machine = Machine::new(
        dir.path(),
        "m",
        &busybox,
        &[(
            "Dockerfile",
            "FROM busybox:latest\nRUN readlink /proc/self/ns/net > /netns\n",
        )],
    );
    // slirp4netns is looked up in PATH; the helper is this binary itself.
    let output = machine
        .stagecraft()
        .env("PATH", dir.path().join("no-such-dir"))
        .args(["build", "--progress=plain", "-t", "net:fallback"])
        .arg(&machine.context)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains(FALLBACK), "{stderr}");
    assert!(stderr.contains("slirp4netns is not installed"), "{stderr}");
    let rootfs = rootfs(&machine, "net:fallback", dir.path(), "rootfs");
    let host = std::fs::read_link("/proc/self/ns/net").unwrap();
    assert_eq!(
        read(&rootfs, "netns").trim(),
        host.to_str().unwrap(),
        "the warning says the host's network"
    );
}
