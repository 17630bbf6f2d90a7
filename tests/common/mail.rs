//! The real mail server of `scripts/mailserver` seen from tests: the shared
//! instance described by the `MS_*` variables, private instances on other
//! ports in their own directory, a small synchronous IMAP client, SMTP
//! submission, and delivery straight into a Dovecot Maildir.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const HOW: &str = "run `scripts/test`, or `scripts/mailserver start /tmp/postdesk-mail && set -a && . /tmp/postdesk-mail/env && set +a` first";

/// A running Postfix + Dovecot.
#[derive(Debug, Clone)]
pub struct MailServer {
    pub host: String,
    pub imap_port: u16,
    pub imaps_port: u16,
    pub smtp_port: u16,
    pub password: String,
    /// The CA that signed the server certificate.
    pub ca: PathBuf,
    /// The server's directory (Maildirs under `mail/`).
    pub dir: PathBuf,
}

fn parse_env(lookup: impl Fn(&str) -> Option<String>) -> Result<MailServer, String> {
    let var = |name: &str| lookup(name).ok_or_else(|| format!("{name} is not set"));
    let port = |name: &str| -> Result<u16, String> {
        let v = var(name)?;
        v.parse()
            .map_err(|e| format!("{name}={v:?} is not a port ({e})"))
    };
    Ok(MailServer {
        host: lookup("MS_HOST").unwrap_or_else(|| "127.0.0.1".into()),
        imap_port: port("MS_IMAP_PORT")?,
        imaps_port: port("MS_IMAPS_PORT")?,
        smtp_port: port("MS_SMTP_PORT")?,
        password: var("MS_PASSWORD")?,
        ca: PathBuf::from(var("MS_CA")?),
        dir: PathBuf::from(var("MS_DIR")?),
    })
}

/// The shared test server (`MS_*` from `scripts/mailserver`); fails, with
/// what to run, when it is not there.
pub fn mail_server() -> MailServer {
    parse_env(|n| std::env::var(n).ok()).unwrap_or_else(|e| {
        panic!("{e}: these tests need the test mail server (Debian packages dovecot-imapd, dovecot-lmtpd, postfix; installed by the script); {HOW}")
    })
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/mailserver")
}

/// A loopback port nobody listens on (now).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// A private Postfix + Dovecot on free ports in its own directory, for a
/// test that stops its server or needs another server config. Stopped and
/// removed on drop.
pub struct Instance {
    pub server: MailServer,
    dir: PathBuf,
    env: Vec<(String, String)>,
}

impl Instance {
    /// Starts one; `env` adds variables such as `MS_DOVECOT_NO_MOVE_IDLE`.
    pub fn start(env: &[(&str, &str)]) -> Instance {
        // Short and world-searchable (Dovecot and Postfix users traverse it).
        let dir = PathBuf::from(format!("/tmp/pdt-{}-{}", std::process::id(), free_port()));
        let mut vars: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        for name in [
            "MS_IMAP_PORT",
            "MS_IMAPS_PORT",
            "MS_SMTP_PORT",
            "MS_SMTPS_PORT",
        ] {
            vars.push((name.into(), free_port().to_string()));
        }
        let mut instance = Instance {
            server: MailServer {
                host: String::new(),
                imap_port: 0,
                imaps_port: 0,
                smtp_port: 0,
                password: String::new(),
                ca: PathBuf::new(),
                dir: dir.clone(),
            },
            dir,
            env: vars,
        };
        instance.run("start");
        let text = std::fs::read_to_string(instance.dir.join("env")).expect("instance env");
        let values: Vec<(String, String)> = text
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.trim_matches('"').to_string()))
            .collect();
        instance.server =
            parse_env(|n| values.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone()))
                .expect("instance env");
        instance
    }

    /// `scripts/mailserver CMD DIR` with this instance's variables.
    pub fn run(&self, cmd: &str) {
        let out = Command::new(script())
            .arg(cmd)
            .arg(&self.dir)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .output()
            .expect("run scripts/mailserver");
        assert!(
            out.status.success(),
            "scripts/mailserver {cmd} {} failed: {}{}",
            self.dir.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = Command::new(script()).arg("stop").arg(&self.dir).output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The server a bench runs against: the one the `MS_*` variables describe
/// when `POSTDESK_BENCH_MS_ENV=1`, else a private instance, kept running as
/// long as the returned guard lives.
pub fn bench_server() -> (Option<Instance>, MailServer) {
    if std::env::var_os("POSTDESK_BENCH_MS_ENV").is_some_and(|v| v == "1") {
        (None, mail_server())
    } else {
        let instance = Instance::start(&[]);
        let server = instance.server.clone();
        (Some(instance), server)
    }
}

/// A name unique to this test run, usable as a folder and an address
/// detail: the process id and `salt` (e.g. a temporary directory's name).
pub fn nonce(salt: &str) -> String {
    format!(
        "pd{:x}{}",
        std::process::id(),
        salt.chars()
            .filter(char::is_ascii_alphanumeric)
            .collect::<String>()
            .to_ascii_lowercase()
    )
}

/// Polls `check` every 100 ms until it gives Some, for at most `limit` (an
/// external event: delivery, a daemon's pass); panics naming `what`.
pub fn wait_for<T>(what: &str, limit: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "gave up after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Submits `raw` over SMTP (no TLS, loopback, no AUTH) with Nagle off.
pub fn smtp_send(server: &MailServer, from: &str, to: &str, raw: &[u8]) {
    let stream = TcpStream::connect((server.host.as_str(), server.smtp_port))
        .unwrap_or_else(|e| panic!("SMTP {}:{}: {e}", server.host, server.smtp_port));
    stream.set_nodelay(true).expect("nodelay");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut writer = stream.try_clone().expect("clone");
    let mut reader = BufReader::new(stream);
    let expect = |reader: &mut BufReader<TcpStream>, code: &str| {
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).expect("SMTP read");
            assert!(
                line.starts_with(code),
                "SMTP: expected {code}, got {line:?}"
            );
            if line.as_bytes().get(3) != Some(&b'-') {
                return;
            }
        }
    };
    expect(&mut reader, "220");
    for (cmd, code) in [
        ("EHLO test.example".to_string(), "250"),
        (format!("MAIL FROM:<{from}>"), "250"),
        (format!("RCPT TO:<{to}>"), "250"),
        ("DATA".to_string(), "354"),
    ] {
        writer
            .write_all(format!("{cmd}\r\n").as_bytes())
            .expect("SMTP write");
        expect(&mut reader, code);
    }
    let mut data = Vec::with_capacity(raw.len() + 8);
    for line in raw.split_inclusive(|&b| b == b'\n') {
        if line.first() == Some(&b'.') {
            data.push(b'.');
        }
        data.extend_from_slice(line);
    }
    if !data.ends_with(b"\r\n") {
        data.extend_from_slice(b"\r\n");
    }
    data.extend_from_slice(b".\r\n");
    writer.write_all(&data).expect("SMTP data");
    expect(&mut reader, "250");
    let _ = writer.write_all(b"QUIT\r\n");
}

/// Drops `raw` into `user`'s Maildir folder (INBOX for None) the way an MDA
/// does (tmp/, then new/), owned by uid 8 like Dovecot's own files.
pub fn deliver_to_maildir(
    server: &MailServer,
    user: &str,
    folder: Option<&str>,
    name: &str,
    raw: &[u8],
) {
    let mut root = server.dir.join("mail").join(user).join("Maildir");
    if let Some(folder) = folder {
        root = root.join(format!(".{folder}"));
    }
    let tmp = root.join("tmp").join(name);
    let new = root.join("new").join(name);
    std::fs::write(&tmp, raw).unwrap_or_else(|e| panic!("write {}: {e}", tmp.display()));
    chown_mail(&tmp);
    std::fs::rename(&tmp, &new).expect("tmp -> new");
}

/// Gives a file to uid/gid 8 (`mail`), as Dovecot's files are.
pub fn chown_mail(path: &Path) {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).expect("path");
    // SAFETY: a valid NUL-terminated path; chown only reads it.
    let rc = unsafe { libc::chown(c.as_ptr(), 8, 8) };
    assert_eq!(rc, 0, "chown {}", path.display());
}

/// A minimal synchronous IMAP client (plain TCP on loopback).
pub struct Imap {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    tag: u32,
}

/// One untagged response: its text (literals replaced by `{n}`) and literals.
#[derive(Debug, Clone)]
pub struct Untagged {
    pub text: String,
    pub literals: Vec<Vec<u8>>,
}

fn literal_length(line: &[u8]) -> Option<usize> {
    let text = std::str::from_utf8(line)
        .ok()?
        .trim_end_matches(['\r', '\n']);
    let open = text.strip_suffix('}')?.rfind('{')?;
    text[open + 1..text.len() - 1].parse().ok()
}

/// An IMAP quoted string.
pub fn quoted(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

impl Imap {
    /// Connects and logs in as `user`.
    pub fn login(server: &MailServer, user: &str) -> Imap {
        let stream = TcpStream::connect((server.host.as_str(), server.imap_port))
            .unwrap_or_else(|e| panic!("IMAP {}:{}: {e}", server.host, server.imap_port));
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        stream.set_nodelay(true).expect("nodelay");
        let mut imap = Imap {
            reader: BufReader::new(stream.try_clone().expect("clone")),
            writer: stream,
            tag: 0,
        };
        let greeting = imap.line();
        assert!(
            greeting.starts_with(b"* OK"),
            "IMAP greeting: {}",
            String::from_utf8_lossy(&greeting)
        );
        imap.ok(&format!(
            "LOGIN {} {}",
            quoted(user),
            quoted(&server.password)
        ));
        imap
    }

    fn line(&mut self) -> Vec<u8> {
        let mut line = Vec::new();
        self.reader.read_until(b'\n', &mut line).expect("IMAP read");
        assert!(!line.is_empty(), "IMAP server closed the connection");
        line
    }

    /// Sends `command` (with `literal`, if any, after the server's `+`);
    /// returns the untagged responses and the tagged status line.
    pub fn command_with(
        &mut self,
        command: &str,
        literal: Option<&[u8]>,
    ) -> (Vec<Untagged>, String) {
        self.tag += 1;
        let tag = format!("t{}", self.tag);
        self.writer
            .write_all(format!("{tag} {command}\r\n").as_bytes())
            .expect("IMAP write");
        if let Some(literal) = literal {
            let go = self.line();
            assert!(
                go.starts_with(b"+"),
                "IMAP `{command}`: {}",
                String::from_utf8_lossy(&go)
            );
            self.writer.write_all(literal).expect("IMAP literal");
            self.writer.write_all(b"\r\n").expect("IMAP write");
        }
        let mut responses = Vec::new();
        loop {
            let mut response = Untagged {
                text: String::new(),
                literals: Vec::new(),
            };
            let mut line = self.line();
            while let Some(n) = literal_length(&line) {
                response.text.push_str(&String::from_utf8_lossy(&line));
                let mut literal = vec![0; n];
                self.reader.read_exact(&mut literal).expect("IMAP literal");
                response.literals.push(literal);
                line = self.line();
            }
            response.text.push_str(&String::from_utf8_lossy(&line));
            if let Some(rest) = response.text.strip_prefix(&format!("{tag} ")) {
                return (responses, rest.trim_end().to_string());
            }
            responses.push(response);
        }
    }

    /// Sends `command`; panics unless the server says OK.
    pub fn ok(&mut self, command: &str) -> Vec<Untagged> {
        let (responses, status) = self.command_with(command, None);
        assert!(
            status.starts_with("OK"),
            "IMAP `{command}` failed: {status}"
        );
        responses
    }

    pub fn create(&mut self, folder: &str) {
        self.ok(&format!("CREATE {}", quoted(folder)));
    }

    /// Deletes `folder` if it exists.
    pub fn delete(&mut self, folder: &str) {
        let _ = self.command_with(&format!("DELETE {}", quoted(folder)), None);
    }

    /// Appends `raw` to `folder` with `flags` (e.g. `\Seen`, or "").
    pub fn append(&mut self, folder: &str, flags: &str, raw: &[u8]) {
        let (_, status) = self.command_with(
            &format!("APPEND {} ({flags}) {{{}}}", quoted(folder), raw.len()),
            Some(raw),
        );
        assert!(status.starts_with("OK"), "APPEND to {folder}: {status}");
    }

    /// Selects `folder`; returns its UIDVALIDITY.
    pub fn select(&mut self, folder: &str) -> u32 {
        self.ok(&format!("SELECT {}", quoted(folder)))
            .iter()
            .find_map(|r| {
                let rest = r.text.split("[UIDVALIDITY ").nth(1)?;
                rest.split(']').next()?.parse().ok()
            })
            .expect("SELECT gives UIDVALIDITY")
    }

    /// (UID, flags, Message-ID header value) of every message of `folder`.
    pub fn messages(&mut self, folder: &str) -> Vec<(u32, String, String)> {
        self.select(folder);
        let mut out = Vec::new();
        for r in self.ok("UID FETCH 1:* (UID FLAGS BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])") {
            let uid = r
                .text
                .split("UID ")
                .nth(1)
                .and_then(|s| s.split([' ', ')']).next())
                .and_then(|s| s.parse().ok());
            let flags = r
                .text
                .split("FLAGS (")
                .nth(1)
                .and_then(|s| s.split(')').next())
                .unwrap_or("")
                .to_string();
            let id = r
                .literals
                .first()
                .map(|h| {
                    String::from_utf8_lossy(h)
                        .split_once(':')
                        .map(|(_, v)| v.trim().to_string())
                        .unwrap_or_default()
                })
                .unwrap_or_default();
            if let Some(uid) = uid {
                out.push((uid, flags, id));
            }
        }
        out
    }

    /// The header blocks of every message of `folder`.
    pub fn headers(&mut self, folder: &str) -> Vec<Vec<(String, String)>> {
        self.select(folder);
        self.ok("UID FETCH 1:* (BODY.PEEK[HEADER])")
            .iter()
            .filter_map(|r| r.literals.first())
            .map(|block| headers(block))
            .collect()
    }

    pub fn logout(mut self) {
        let _ = self.writer.write_all(b"z LOGOUT\r\n");
    }
}

/// A header block as (lower-cased name, unfolded value) pairs.
pub fn headers(block: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(block).replace("\r\n", "\n");
    let unfolded = text.replace("\n ", " ").replace("\n\t", " ");
    unfolded
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_string()))
        .collect()
}

/// The values of header `name` (lower case) in `headers`.
pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    headers
        .iter()
        .filter(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
        .collect()
}
