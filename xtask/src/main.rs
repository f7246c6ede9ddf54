//! Project automation. `cargo xtask ci` is exactly what CI runs; `cargo xtask bench` runs the
//! criterion benchmarks and writes BENCHMARKS.md; `cargo xtask sim` runs seeds of the fleet
//! simulation.

mod modules;

use std::env;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("deps") => check_dependency_rules(),
        Some("modules") => check_module_rule(),
        Some("package") => package(),
        Some("downstream") => downstream(),
        Some("bench") => bench(&args[1..]),
        Some("sim") => sim(&args[1..]),
        _ => {
            eprintln!(
                "usage: cargo xtask <command>\n\n\
                 commands:\n  \
                 ci      fmt check, the module rule, clippy -D warnings, redis-server (installed if missing), tests, 1,000 simulation seeds (kept classes, then each class alone), docs -D warnings, examples, the downstream crate, packaging, dependency rules\n  \
                 deps    only the dependency rules (cargo tree)\n  \
                 modules only the module rule: within a crate, no module imports one that imports it\n  \
                 package only `cargo package --workspace` (packs and builds every published crate)\n  \
                 downstream  builds and runs tests/downstream-aerion (Aerion only, by path) against the emulator\n  \
                 bench   criterion benchmarks (the cache, the Redis store); results in BENCHMARKS.md\n  \
                 sim     the fleet simulation: [--debug] --seeds N [--start S] runs N seeds, --seed S \
                 replays one with its trace (partner-auth-sim --help for more)"
            );
            Err("unknown command".into())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

type Result<T = (), E = String> = std::result::Result<T, E>;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

fn cargo() -> Command {
    let mut cmd = Command::new(env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(root());
    cmd
}

fn run(step: &str, mut cmd: Command) -> Result {
    eprintln!("\n==> {step}");
    let status = cmd
        .status()
        .map_err(|e| format!("{step}: cannot start: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{step} failed ({status})"))
    }
}

fn output(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .output()
        .map_err(|e| format!("cannot start cargo: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{:?} failed: {}",
            cmd,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn ci() -> Result {
    let mut fmt = cargo();
    fmt.args(["fmt", "--all", "--", "--check"]);
    run("cargo fmt --check", fmt)?;

    check_module_rule()?;

    let mut clippy = cargo();
    clippy.args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--all-features",
        "--",
        "-D",
        "warnings",
    ]);
    run("cargo clippy -D warnings", clippy)?;

    // The Redis store's tests start a real redis-server: never skipped.
    ensure_redis_server()?;
    let mut test = cargo();
    test.args(["test", "--workspace", "--all-features"]);
    run("cargo test", test)?;

    // The fleet simulation: seeds of faults against the cache's promises (see `sim`). Under
    // the classes CI keeps together (`kept`), then under every class alone; RELIABILITY.md
    // counts what every class at once still breaks.
    sim(&[
        "--debug".into(),
        "--seeds".into(),
        CI_SEEDS.to_string(),
        "--faults".into(),
        "kept".into(),
    ])?;
    sim(&[
        "--debug".into(),
        "--seeds".into(),
        CI_SEEDS.to_string(),
        "--each".into(),
    ])?;

    let mut doc = cargo();
    doc.args(["doc", "--workspace", "--all-features", "--no-deps"])
        .env("RUSTDOCFLAGS", "-Dwarnings");
    run("cargo doc -Dwarnings", doc)?;

    let mut examples = cargo();
    examples.args(["build", "--workspace", "--all-features", "--examples"]);
    run("cargo build --examples", examples)?;

    downstream()?;

    package()?;

    check_dependency_rules()?;
    eprintln!("\nxtask ci: all checks passed");
    Ok(())
}

/// Where the downstream crate lives: a crate outside the workspace that uses one provider crate
/// by path, as a user's service would.
const DOWNSTREAM: &str = "tests/downstream-aerion";

/// Builds and runs the downstream crate against the emulator: an Aerion token, then an
/// authenticated call through reqwest-middleware and one through hyper-util behind the tower
/// layer. It resolves with the workspace's Cargo.lock (copied in), so it needs no package the
/// workspace's build has not fetched, and builds into the workspace's target directory with the
/// same profile, so it reuses what that build compiled.
fn downstream() -> Result {
    let mut build = cargo();
    build.args([
        "build",
        "--quiet",
        "-p",
        "partner-auth-emulator",
        "--bin",
        "partner-auth-emulator",
    ]);
    run("build partner-auth-emulator", build)?;
    let target = target_dir()?;
    let bin = target
        .join("debug")
        .join(format!("partner-auth-emulator{}", env::consts::EXE_SUFFIX));
    let crate_dir = root().join(DOWNSTREAM);
    std::fs::copy(root().join("Cargo.lock"), crate_dir.join("Cargo.lock"))
        .map_err(|e| format!("cannot copy Cargo.lock into {DOWNSTREAM}: {e}"))?;

    let emulator = Emulator::start(&bin)?;
    let mut service = cargo();
    service
        .arg("run")
        .arg("--manifest-path")
        .arg(crate_dir.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", &target)
        // Only the emulator's Aerion settings: nothing from the caller's environment.
        .env_remove("AERION_ORIGIN")
        .env_remove("AERION_REFRESH_TOKEN")
        .env_remove("AERION_PASSWORD_FILE")
        .env_remove("AERION_REFRESH_TOKEN_FILE")
        .env("NO_PROXY", "127.0.0.1,localhost");
    for (name, value) in emulator
        .vars
        .iter()
        .filter(|(n, _)| n.starts_with("AERION_"))
    {
        service.env(name, value);
    }
    run(&format!("{DOWNSTREAM} against the emulator"), service)
}

/// The emulator binary, serving until dropped, and the variables its banner exports.
struct Emulator {
    child: std::process::Child,
    vars: Vec<(String, String)>,
}

impl Emulator {
    fn start(bin: &Path) -> Result<Self> {
        use std::io::BufRead;
        let mut child = Command::new(bin)
            .args(["--port", "0"])
            .env_remove("PARTNER_AUTH_EMULATOR_PORT")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
        let stdout = child.stdout.take().ok_or("the emulator has no stdout")?;
        let mut emulator = Self {
            child,
            vars: Vec::new(),
        };
        // The banner: `export NAME='value'` lines, ending with a commented session token.
        for line in std::io::BufReader::new(stdout).lines() {
            let line = line.map_err(|e| format!("cannot read the emulator's banner: {e}"))?;
            if let Some(var) = line.strip_prefix("export ").and_then(export_line) {
                emulator.vars.push(var);
            }
            if line.starts_with("# export AURORA_SOLAR_SESSION_TOKEN=") {
                return Ok(emulator);
            }
        }
        Err("the emulator stopped before it printed its settings".into())
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `NAME='value'` (a POSIX shell's single quotes, `'\''` for a quote) as name and value.
fn export_line(line: &str) -> Option<(String, String)> {
    let (name, quoted) = line.split_once('=')?;
    let value = match quoted.strip_prefix('\'').and_then(|q| q.strip_suffix('\'')) {
        Some(inner) => inner.replace("'\\''", "'"),
        None => quoted.to_owned(),
    };
    Some((name.to_owned(), value))
}

/// How many seeds of the simulation CI runs.
const CI_SEEDS: u32 = 1_000;

/// Runs the fleet simulation (`partner-auth-sim`) with `args`: `--seeds N [--start S]` runs N
/// seeds and prints the first that breaks a promise, with its trace; `--seed S` replays one.
/// A leading `--debug` runs the dev build instead of the release one.
///
/// Release by default: a long run (the tens of thousands of seeds worth running after a change
/// to the cache or a store) goes several times faster, and the build is made once. CI runs the
/// dev build `cargo test` has just made: a release build of the whole tree would cost minutes
/// before the first seed, and 1,000 seeds fit well within CI's minute without it.
fn sim(args: &[String]) -> Result {
    let (release, args) = match args.split_first() {
        Some((first, rest)) if first == "--debug" => (false, rest),
        _ => (true, args),
    };
    if args.is_empty() {
        return Err(
            "usage: cargo xtask sim [--debug] --seeds N [--start S] | --seed S \
                    [--faults LIST] [--promises LIST]"
                .into(),
        );
    }
    // Built with the features the whole workspace unifies, as `cargo test --workspace
    // --all-features` builds it: after the tests, the dev build has nothing left to compile
    // (`cargo run -p` would unify the simulation's alone and rebuild its dependencies).
    let mut build = cargo();
    build.args([
        "build",
        "--quiet",
        "--workspace",
        "--all-features",
        "--bin",
        "partner-auth-sim",
    ]);
    if release {
        build.arg("--release");
    }
    run("build partner-auth-sim", build)?;
    let bin = target_dir()?
        .join(if release { "release" } else { "debug" })
        .join(format!("partner-auth-sim{}", env::consts::EXE_SUFFIX));
    let mut cmd = Command::new(bin);
    cmd.args(args);
    run(&format!("partner-auth-sim {}", args.join(" ")), cmd)
}

/// The workspace's target directory, as cargo resolves it (`CARGO_TARGET_DIR` included).
fn target_dir() -> Result<PathBuf> {
    let meta = output(cargo().args(["metadata", "--no-deps", "--format-version", "1"]))?;
    let key = "\"target_directory\":\"";
    let start = meta
        .find(key)
        .map(|i| i + key.len())
        .ok_or("cargo metadata names no target directory")?;
    let end = meta[start..]
        .find('"')
        .ok_or("cargo metadata's target directory is cut short")?;
    Ok(PathBuf::from(
        meta[start..start + end].replace("\\\\", "\\"),
    ))
}

/// `cargo package --workspace`: every published crate packs (manifest, README and licence
/// files included) and its packed sources build against the others' packed sources. Reaches
/// crates.io's index, nothing else. No `--allow-dirty`: CI runs on a clean clone, and a dirty
/// tree locally should be committed before it is called clean.
fn package() -> Result {
    forget_packed_sources()?;
    // Its own target directory, emptied first: cargo takes a registry crate's build as final,
    // so a build of an earlier packing (same name and version) would be reused.
    let target = root().join("target").join("package-check");
    if target.exists() {
        std::fs::remove_dir_all(&target)
            .map_err(|e| format!("cannot remove {}: {e}", target.display()))?;
    }
    let mut package = cargo();
    package.args([
        "package",
        "--workspace",
        "--exclude",
        "xtask",
        "--exclude",
        "partner-auth-benches",
        "--exclude",
        "partner-auth-sim",
        "--locked",
    ]);
    package.arg("--target-dir").arg(&target);
    // Packed crates build with cargo's default profile, not this workspace's: keep their debug
    // information out too, so the verification needs little disk beside the main build.
    package
        .env("CARGO_PROFILE_DEV_DEBUG", "false")
        .env("CARGO_INCREMENTAL", "0");
    run("cargo package --workspace", package)?;
    std::fs::remove_dir_all(&target).map_err(|e| format!("cannot remove {}: {e}", target.display()))
}

/// Removes the sources cargo unpacked from an earlier `cargo package` of this workspace.
///
/// The verify step builds each crate against the others' packed sources, which cargo unpacks
/// under `$CARGO_HOME/registry/src/-<hash>/<name>-<version>/` and never unpacks again while that
/// directory exists: a change since that run (same version) would be verified against the old
/// sources. Only those local-registry directories (named `-…`) and only this workspace's crates
/// are removed; they are caches.
fn forget_packed_sources() -> Result {
    let home = env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")));
    let Some(src) = home.map(|h| h.join("registry").join("src")) else {
        return Ok(());
    };
    let Ok(registries) = std::fs::read_dir(&src) else {
        return Ok(());
    };
    let names = members()?;
    for registry in registries.flatten() {
        if !registry.file_name().to_string_lossy().starts_with('-') {
            continue;
        }
        let Ok(crates) = std::fs::read_dir(registry.path()) else {
            continue;
        };
        for unpacked in crates.flatten() {
            let dir = unpacked.file_name().to_string_lossy().into_owned();
            let ours = names.iter().any(|name| {
                dir.strip_prefix(name.as_str())
                    .and_then(|rest| rest.strip_prefix('-'))
                    .is_some_and(|version| version.starts_with(|c: char| c.is_ascii_digit()))
            });
            if ours {
                std::fs::remove_dir_all(unpacked.path())
                    .map_err(|e| format!("cannot remove {}: {e}", unpacked.path().display()))?;
            }
        }
    }
    Ok(())
}

/// The package names of the workspace's members.
fn members() -> Result<Vec<String>> {
    let meta = output(cargo().args(["metadata", "--no-deps", "--format-version", "1"]))?;
    // Every member's name appears as `"name":"..."` directly after `{"name":` in `packages`; a
    // light scan keeps xtask free of a JSON dependency.
    let mut names = Vec::new();
    let mut rest = meta.as_str();
    while let Some(i) = rest.find("{\"name\":\"") {
        rest = &rest[i + 9..];
        if let Some(end) = rest.find('"') {
            names.push(rest[..end].to_owned());
        }
    }
    Ok(names)
}

/// The distinct `name vX.Y.Z` packages in `cargo tree` for `args`.
fn tree(args: &[&str]) -> Result<Vec<String>> {
    let mut cmd = cargo();
    cmd.args(["tree", "--prefix", "none", "--format", "{p}"]);
    cmd.args(args);
    let out = output(&mut cmd)?;
    let mut pkgs: Vec<String> = out
        .lines()
        .filter_map(|l| {
            let mut parts = l.split_whitespace();
            let (name, version) = (parts.next()?, parts.next()?);
            version
                .starts_with('v')
                .then(|| format!("{name} {version}"))
        })
        .collect();
    pkgs.sort();
    pkgs.dedup();
    Ok(pkgs)
}

fn has(pkgs: &[String], name: &str) -> bool {
    pkgs.iter().any(|p| p.split(' ').next() == Some(name))
}

const PROVIDERS: [&str; 3] = ["aerion-auth", "aurora-uk-auth", "aurora-solar-auth"];

/// The module rule ([`modules`]) over every crate of the workspace.
fn check_module_rule() -> Result {
    let mut sources = vec![root().join("src"), root().join("xtask").join("src")];
    let crates = root().join("crates");
    let listed =
        std::fs::read_dir(&crates).map_err(|e| format!("cannot list {}: {e}", crates.display()))?;
    for entry in listed {
        let src = entry
            .map_err(|e| format!("cannot list crates: {e}"))?
            .path()
            .join("src");
        if src.is_dir() {
            sources.push(src);
        }
    }
    sources.sort();
    let mut broken = Vec::new();
    for src in &sources {
        for cycle in modules::cycles(src)? {
            let crate_dir = src
                .parent()
                .unwrap_or(src)
                .strip_prefix(root())
                .unwrap_or(src);
            broken.push(format!("{}: {}", crate_dir.display(), cycle.join(", ")));
        }
    }
    if broken.is_empty() {
        eprintln!(
            "xtask: module rule: no import cycle in {} crates",
            sources.len()
        );
        return Ok(());
    }
    Err(format!(
        "modules that import each other (directly or through the others listed):\n  {}",
        broken.join("\n  ")
    ))
}

/// SPEC section 1: provider crates are independent, Aurora Solar has no OAuth crates, Aerion has
/// no OpenID Connect, neither Aerion nor Aurora UK compiles the keyed cache or the pace, one
/// reqwest in the tree, no OpenSSL, and a facade built with only `aerion` holds neither
/// `openidconnect` nor another provider nor the keyed cache nor the metrics facade.
fn check_dependency_rules() -> Result {
    eprintln!("\n==> dependency rules (cargo tree)");
    let members = members()?;
    let mut failures = Vec::new();
    for provider in PROVIDERS.iter().filter(|p| members.iter().any(|m| m == *p)) {
        let pkgs = tree(&["-p", provider, "-e", "normal"])?;
        for other in PROVIDERS.iter().filter(|o| *o != provider) {
            if has(&pkgs, other) {
                failures.push(format!("{provider} depends on {other}"));
            }
        }
        if !has(&pkgs, "token-provider") {
            failures.push(format!("{provider} does not depend on token-provider"));
        }
        // The keyed cache (`quick_cache`) and the pace (`governor`) come with the core's
        // `keyed` feature, which only Aurora Solar (many tenants and users behind one key)
        // needs.
        let banned: &[&str] = match *provider {
            "aurora-solar-auth" => &["oauth2", "openidconnect"],
            "aerion-auth" => &["openidconnect", "quick_cache", "governor"],
            "aurora-uk-auth" => &["quick_cache", "governor"],
            _ => &[],
        };
        for b in banned {
            if has(&pkgs, b) {
                failures.push(format!("{provider} pulls in {b}"));
            }
        }
        eprintln!("    {provider}: {} packages", pkgs.len());
    }

    let all = tree(&["--workspace", "--all-features", "-e", "normal,build,dev"])?;
    let reqwests: Vec<&String> = all.iter().filter(|p| p.starts_with("reqwest ")).collect();
    if reqwests.len() != 1 {
        failures.push(format!("expected exactly one reqwest, found {reqwests:?}"));
    }
    for b in ["openssl-sys", "openssl", "native-tls"] {
        if has(&all, b) {
            failures.push(format!("the tree holds {b}: TLS must be rustls"));
        }
    }

    if members.iter().any(|m| m == "aerion-auth") {
        let pkgs = tree(&[
            "-p",
            "partner-auth",
            "--no-default-features",
            "--features",
            "aerion",
            "-e",
            "normal",
        ])?;
        for b in [
            "openidconnect",
            "aurora-uk-auth",
            "aurora-solar-auth",
            "quick_cache",
            "governor",
            // The metrics facade comes with the `metrics` feature only.
            "metrics",
        ] {
            if has(&pkgs, b) {
                failures.push(format!("partner-auth with only `aerion` pulls in {b}"));
            }
        }
    }

    if failures.is_empty() {
        eprintln!(
            "    all dependency rules hold ({} packages in the tree)",
            all.len()
        );
        Ok(())
    } else {
        Err(format!(
            "dependency rules broken:\n  {}",
            failures.join("\n  ")
        ))
    }
}

/// Makes sure `redis-server` and `redis-cli` (the Redis store's tests) and `openssl` (their TLS
/// certificates) are on the PATH: installs Debian's `redis-server` and `openssl` packages when
/// missing and running as root with apt-get, and otherwise fails with one line saying how.
fn ensure_redis_server() -> Result {
    // `redis-server --version`, `openssl version`: each answers 0 when it is there.
    let found = |bin: &str, arg: &str| {
        Command::new(bin)
            .arg(arg)
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let missing = || {
        let mut packages = Vec::new();
        if !(found("redis-server", "--version") && found("redis-cli", "--version")) {
            packages.push("redis-server");
        }
        if !found("openssl", "version") {
            packages.push("openssl");
        }
        packages
    };
    let packages = missing();
    if packages.is_empty() {
        return Ok(());
    }
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    let how = format!(
        "{} missing: install it (Debian/Ubuntu: `sudo apt-get install -y {}`; macOS: `brew \
         install redis openssl`) and run again",
        packages.join(" and "),
        packages.join(" ")
    );
    if !(root && found_apt()) {
        return Err(how);
    }
    eprintln!("\n==> installing {} (apt-get)", packages.join(", "));
    let mut install = vec!["install", "-y", "-q", "--no-install-recommends"];
    install.extend(&packages);
    for args in [&["update", "-q"][..], &install[..]] {
        let status = Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .map_err(|e| format!("apt-get: {e}; {how}"))?;
        if !status.success() {
            return Err(format!("apt-get {} failed ({status}); {how}", args[0]));
        }
    }
    if missing().is_empty() {
        Ok(())
    } else {
        Err(how)
    }
}

fn found_apt() -> bool {
    Command::new("apt-get")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Where BENCHMARKS.md's hand-measured section starts.
const FOOTPRINT_HEADING: &str = "## Footprint";

fn bench(extra: &[String]) -> Result {
    // Each benchmark writes its section of the report; BENCHMARKS.md is their concatenation,
    // in this order.
    let benches = [
        ("partner-auth-benches", "cache", "bench-report.md"),
        (
            "partner-auth-benches",
            "instructions",
            "bench-instructions.md",
        ),
        ("partner-auth-benches", "keyed", "bench-keyed.md"),
        ("partner-auth-benches", "cold_start", "bench-cold-start.md"),
        ("partner-auth-benches", "fleet", "bench-report-redis.md"),
    ];
    // The Redis store's benchmark starts a real redis-server.
    ensure_redis_server()?;
    let mut body = String::new();
    for (package, bench, report) in benches {
        let mut cmd = cargo();
        cmd.args(["bench", "-p", package, "--bench", bench]);
        if !extra.is_empty() {
            cmd.arg("--").args(extra);
        }
        run(&format!("cargo bench ({package} {bench})"), cmd)?;
        let report = root().join("target").join(report);
        let section = std::fs::read_to_string(&report)
            .map_err(|e| format!("the benchmark did not write {}: {e}", report.display()))?;
        if !body.is_empty() {
            body.push('\n');
        }
        body.push_str(&section);
    }
    let out = root().join("BENCHMARKS.md");
    // The footprint section is measured by hand (clean builds of a crate outside the
    // workspace, before and after a change): kept as it is, after the generated ones.
    if let Ok(old) = std::fs::read_to_string(&out)
        && let Some(at) = old.find(FOOTPRINT_HEADING)
    {
        body.push('\n');
        body.push_str(&old[at..]);
    }
    std::fs::write(&out, body).map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    eprintln!("wrote {}", out.display());
    Ok(())
}
