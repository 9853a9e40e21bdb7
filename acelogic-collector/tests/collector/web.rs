//! The web view in a real browser: Debian's headless Chromium loads the
//! tree page over mTLS with an auditor's client certificate (from an NSS
//! database, chosen by the profile's auto-select setting, as an operator's
//! browser would hold it), and is refused without one. `cargo xtask setup`
//! installs Chromium, NSS's tools and OpenSSL; without them this test
//! fails, saying so.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use acelogic_lineage::sample::{self, Builder, Proc};

use crate::{pki::*, support::*};

const MIN: Duration = Duration::from_secs(60);

fn tool(name: &str, package: &str) -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "{name} is not installed (Debian package {package}); run `cargo xtask setup` \
             (the browser test of the web view needs it)"
        )
    })
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A browser profile: a HOME whose NSS database trusts the CA (and holds
/// `cert`, if given), and a fresh Chromium user-data-dir that auto-selects
/// a certificate of that CA for `origin`.
fn profile(
    dir: &Dir,
    tag: &str,
    pki: &Pki,
    cert: Option<&Cert>,
    origin: &str,
) -> (PathBuf, PathBuf) {
    let home = dir.path(&format!("{tag}-home"));
    let nss = home.join(".pki/nssdb");
    std::fs::create_dir_all(&nss).unwrap();
    let db = format!("sql:{}", nss.display());
    let certutil = tool("certutil", "libnss3-tools");
    run(Command::new(&certutil).args(["-N", "-d", &db, "--empty-password"]));
    run(Command::new(&certutil)
        .args(["-A", "-d", &db, "-n", "acelogic-test-ca", "-t", "C,,", "-i"])
        .arg(&pki.ca));
    if let Some(c) = cert {
        let p12 = dir.path(&format!("{tag}.p12"));
        run(Command::new(tool("openssl", "openssl"))
            .args([
                "pkcs12", "-export", "-passout", "pass:", "-name", "client", "-in",
            ])
            .arg(&c.pem)
            .arg("-inkey")
            .arg(&c.key)
            .arg("-out")
            .arg(&p12));
        run(Command::new(tool("pk12util", "libnss3-tools"))
            .args(["-d", &db, "-W", "", "-i"])
            .arg(&p12));
    }
    let data = dir.path(&format!("{tag}-chromium"));
    std::fs::create_dir_all(data.join("Default")).unwrap();
    let prefs = serde_json::json!({"profile": {"content_settings": {"exceptions": {
        "auto_select_certificate": {
            format!("{origin},*"): {"setting": {"filters": [{"ISSUER": {"CN": "ACELOGIC collector client CA"}}]}}
        }
    }}}});
    std::fs::write(data.join("Default/Preferences"), prefs.to_string()).unwrap();
    (home, data)
}

/// Runs headless Chromium with `args` then `url`; its stdout.
fn chromium(home: &Path, data: &Path, args: &[&str], url: &str) -> String {
    let mut child = Command::new(tool("chromium", "chromium"))
        .env("HOME", home)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", data.display()))
        .args(args)
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish loading {url} within 90 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The `<li class="proc" ...>` start tag of a process in the DOM.
fn proc_tag<'a>(dom: &'a str, exec_id: &str) -> Option<&'a str> {
    let at = dom.find(&format!("data-exec-id=\"{exec_id}\""))?;
    let start = dom[..at].rfind('<')?;
    Some(&dom[start..at])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_shows_the_tree_with_a_client_certificate_and_is_refused_without() {
    // Fail first, with the fix, when the machine lacks the tools.
    for (t, p) in [
        ("chromium", "chromium"),
        ("certutil", "libnss3-tools"),
        ("pk12util", "libnss3-tools"),
        ("openssl", "openssl"),
    ] {
        tool(t, p);
    }
    let dir = Dir::new("web");
    let pki = Pki::new(&dir);
    let args = pki.collector_args();
    let mut refs: Vec<&str> = args.iter().map(String::as_str).collect();
    refs.push("--accept-new-nodes");
    let c = Collector::start(&dir, &refs);
    let url = https_url(&c);

    // A known session, plus a hostile process name and object: records
    // come from nodes and must show as text.
    let node = TestNode::new(&dir, "node-a");
    let (mut records, p) = sample::session("node-a", now() - 60_000_000_000);
    let mut b = Builder::new("node-a", now() - 30_000_000_000);
    let evil = Proc::new(777, 9_100, Some(&p.shell), "agent", "<b>evil</b>");
    records.push(b.fork(&evil));
    records.push(b.decision(
        &evil,
        "file-open",
        "<img src=x onerror=alert(1)>",
        "deny",
        "no-grant",
        None,
    ));
    node.append(&records);
    let mut shipper = node.ship(&url, Some(&pki.ca));
    shipper.acked(records.len() as u64, MIN).await;

    let page = format!("{url}/tree?exec_id={}", p.shell.exec_id());

    // (a) No certificate: refused, by a plain client and by the browser.
    let (status, code, _) = https_get(
        &c.addr(),
        &format!("/tree?exec_id={}", p.shell.exec_id()),
        &pki.ca,
        None,
    )
    .await;
    assert_eq!(
        (status, code.as_deref()),
        (401, Some("unauthenticated-client"))
    );
    let (home, data) = profile(&dir, "nocert", &pki, None, &url);
    let dom = tokio::task::spawn_blocking({
        let page = page.clone();
        move || chromium(&home, &data, &["--dump-dom"], &page)
    })
    .await
    .unwrap();
    assert!(dom.contains("unauthenticated-client"), "{dom}");
    assert!(
        proc_tag(&dom, p.shell.exec_id()).is_none(),
        "no tree without a certificate: {dom}"
    );

    // (b) The auditor's certificate: the tree, nested, coloured by verdict.
    let (home, data) = profile(&dir, "alice", &pki, Some(&pki.auditor), &url);
    let dom = tokio::task::spawn_blocking({
        let (page, home, data) = (page.clone(), home.clone(), data.clone());
        move || chromium(&home, &data, &["--dump-dom"], &page)
    })
    .await
    .unwrap();
    assert!(dom.contains("alice (auditor)"), "{dom}");
    for proc in [&p.runner, &p.shell, &p.git, &p.curl_shell, &evil] {
        assert!(
            proc_tag(&dom, proc.exec_id()).is_some(),
            "{} missing: {dom}",
            proc.exec_id()
        );
    }
    // git is nested under the shell: its element opens after the shell's
    // and before the shell's list of children closes.
    let shell_at = dom
        .find(&format!("data-exec-id=\"{}\"", p.shell.exec_id()))
        .unwrap();
    let git_at = dom
        .find(&format!("data-exec-id=\"{}\"", p.git.exec_id()))
        .unwrap();
    assert!(shell_at < git_at);
    let denied = dom
        .lines()
        .flat_map(|l| l.split("<li "))
        .find(|l| l.contains("10.0.0.5:5432/tcp"))
        .unwrap_or_else(|| panic!("the denied connection: {dom}"));
    assert!(
        denied.contains("verdict-deny") && denied.contains("no-grant"),
        "{denied}"
    );
    assert!(dom.contains("verdict-allow"), "{dom}");
    assert!(
        dom.contains(&format!("href=\"/artifact?id={}\"", sample::ARTIFACT)),
        "the artifact behind a grant is a link: {dom}"
    );
    assert!(dom.contains("class=\"timeline\""), "{dom}");
    // Hostile text stays text.
    assert!(dom.contains("&lt;img src=x onerror=alert(1)&gt;"), "{dom}");
    assert!(dom.contains("&lt;b&gt;evil&lt;/b&gt;"), "{dom}");
    assert!(!dom.contains("<img") && !dom.contains("<b>evil"), "{dom}");

    // A screenshot, kept as a test artifact.
    let shot = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("web-view-tree.png");
    let _ = std::fs::remove_file(&shot);
    let shot_arg = format!("--screenshot={}", shot.display());
    tokio::task::spawn_blocking({
        let page = page.clone();
        move || chromium(&home, &data, &[&shot_arg, "--window-size=1280,900"], &page)
    })
    .await
    .unwrap();
    let png = std::fs::read(&shot).unwrap_or_else(|e| panic!("{}: {e}", shot.display()));
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "{} bytes",
        png.len()
    );
    println!("web view screenshot: {}", shot.display());

    // Every view is audited: the refused one and alice's.
    let db = c.sql();
    let rows: Vec<(String, String)> = db
        .prepare("SELECT who, outcome FROM queries WHERE method = 'web /tree' ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(
        rows.contains(&("anonymous".into(), "unauthenticated-client".into())),
        "{rows:?}"
    );
    assert!(
        rows.iter()
            .filter(|r| r.0 == "alice" && r.1 == "ok")
            .count()
            >= 2,
        "{rows:?}"
    );
}
