//! IMAP source (async-imap on tokio): one connection to one folder of one
//! mailbox.
//!
//! It connects (implicit TLS, STARTTLS, or plain TCP on loopback; rustls with
//! ring, the webpki roots plus the PEM file named by `POSTDESK_EXTRA_CA`),
//! logs in (AUTHENTICATE PLAIN when advertised, else LOGIN), selects the
//! folder and compares its UIDVALIDITY with the resume point the daemon kept
//! in the store. It hands out new messages by UID, never by `\Seen`, in
//! bounded batches fetched with `BODY.PEEK[]` (reading marks nothing);
//! applies `after_processing` (`seen`, `move:FOLDER` with MOVE or COPY +
//! STORE `\Deleted` + EXPUNGE, `delete`) to the messages the daemon says are
//! committed; and waits for new mail with IDLE (ended and re-issued at least
//! every 25 minutes, RFC 2177 asks for under 29) or by polling.
//!
//! It never touches the store, never decides anything about the mail, and
//! never flags, moves or deletes a message the daemon has not said is
//! committed. Every network call has a timeout. It keeps no state across
//! connections: [`ImapSource::state`] is what the daemon persists.

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_imap::extensions::idle::IdleResponse;
use async_imap::imap_proto::{AttributeValue, Response, ResponseCode, Status};
use async_imap::{Client, Connection, Session};
use postdesk_core::config::{AfterProcessing, Mailbox, MailboxSource, Security};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};
use tracing::{debug, info, warn};

use super::{Incoming, Location, Source, SourceError};
use crate::store::mailbox_state::ImapState;

/// A PEM file of extra trusted CA certificates for IMAP TLS (a private CA,
/// the test server's CA), added to the webpki roots.
pub const EXTRA_CA_ENV: &str = "POSTDESK_EXTRA_CA";

const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// One command, or one response line/literal of a longer answer.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
const LOGOUT_TIMEOUT: Duration = Duration::from_secs(5);
/// IDLE is ended and re-issued at least this often (RFC 2177: under 29 min).
pub const IDLE_MAX: Duration = Duration::from_secs(25 * 60);
/// A fetch batch stops growing at this many bytes (one bigger message still
/// comes alone), so memory stays bounded whatever the backlog.
const BATCH_BYTES: u64 = 32 * 1024 * 1024;
/// The slowest transfer (bytes/s) a message body is given time for.
const MIN_RATE: u64 = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ImapError {
    #[error("cannot connect to {addr}: {source}")]
    Connect { addr: String, source: io::Error },
    #[error("TLS with {host}: {source}")]
    Tls { host: String, source: io::Error },
    #[error("`{host}` is not a valid TLS server name")]
    ServerName { host: String },
    #[error("extra CA file {path} (from {EXTRA_CA_ENV}): {detail}")]
    ExtraCa { path: String, detail: String },
    #[error("TLS setup: {0}")]
    TlsSetup(String),
    #[error("{what}: no answer within {} s", limit.as_secs())]
    Timeout { what: String, limit: Duration },
    #[error(
        "the server refused the login of `{user}`: {detail}; check the mailbox's password (retrying slowly)"
    )]
    Auth { user: String, detail: String },
    #[error(
        "the server allows no password login on this connection (LOGINDISABLED, no AUTH=PLAIN): use security = \"tls\" or \"starttls\""
    )]
    LoginDisabled,
    #[error("folder `{folder}`: {detail}")]
    Folder { folder: String, detail: String },
    #[error("{what}: the server said {status}: {text}")]
    Refused {
        what: String,
        status: &'static str,
        text: String,
        try_create: bool,
    },
    #[error("{what}: the server closed the connection{}", if text.is_empty() { String::new() } else { format!(" (BYE {text})") })]
    Closed { what: String, text: String },
    #[error("{what}: {source}")]
    Io { what: String, source: io::Error },
    #[error("{what}: {source}")]
    Protocol {
        what: String,
        source: async_imap::error::Error,
    },
}

impl ImapError {
    /// A fault of the account or the configuration (password, folder, CA
    /// file) rather than of the network: worth retrying only slowly, and
    /// worth an operator's attention.
    pub fn needs_attention(&self) -> bool {
        match self {
            ImapError::Auth { .. }
            | ImapError::LoginDisabled
            | ImapError::Folder { .. }
            | ImapError::ExtraCa { .. }
            | ImapError::ServerName { .. }
            | ImapError::TlsSetup(_) => true,
            // A certificate we do not trust will not fix itself.
            ImapError::Tls { source, .. } => source
                .get_ref()
                .and_then(|e| e.downcast_ref::<rustls::Error>())
                .is_some_and(|e| {
                    matches!(
                        e,
                        rustls::Error::InvalidCertificate(_)
                            | rustls::Error::NoCertificatesPresented
                    )
                }),
            ImapError::Refused { what, .. } => what == "STARTTLS",
            _ => false,
        }
    }
}

fn protocol(what: &str) -> impl FnOnce(async_imap::error::Error) -> ImapError + '_ {
    move |source| match source {
        async_imap::error::Error::ConnectionLost => ImapError::Closed {
            what: what.into(),
            text: String::new(),
        },
        async_imap::error::Error::Io(source) => ImapError::Io {
            what: what.into(),
            source,
        },
        source => ImapError::Protocol {
            what: what.into(),
            source,
        },
    }
}

fn io_error(what: &str) -> impl FnOnce(io::Error) -> ImapError + '_ {
    move |source| ImapError::Io {
        what: what.into(),
        source,
    }
}

/// `fut`, or a timeout error naming `what`.
async fn within<F: Future>(what: &str, limit: Duration, fut: F) -> Result<F::Output, ImapError> {
    tokio::time::timeout(limit, fut)
        .await
        .map_err(|_| ImapError::Timeout {
            what: what.into(),
            limit,
        })
}

/// The TLS client configuration shared by every IMAP connection: ring as
/// the only crypto provider, the webpki roots, and the certificates of
/// `POSTDESK_EXTRA_CA` if set.
pub fn tls_config() -> Result<Arc<ClientConfig>, ImapError> {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = std::env::var_os(EXTRA_CA_ENV).filter(|p| !p.is_empty()) {
        let shown = Path::new(&path).display().to_string();
        let err = |detail: String| ImapError::ExtraCa {
            path: shown.clone(),
            detail,
        };
        let pem = std::fs::read(&path).map_err(|e| err(e.to_string()))?;
        let mut added = 0;
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|e| err(e.to_string()))?;
            roots.add(cert).map_err(|e| err(e.to_string()))?;
            added += 1;
        }
        if added == 0 {
            return Err(err("no PEM certificate in it".into()));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ImapError::TlsSetup(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The connection: plain TCP (loopback, or before STARTTLS) or TLS.
#[derive(Debug)]
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// An IMAP mailbox of the config (the password comes separately, so that
/// this can be logged).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub host: String,
    pub port: u16,
    pub security: Security,
    pub username: String,
    pub folder: String,
    pub after: AfterProcessing,
    pub idle: bool,
}

impl Settings {
    /// The IMAP settings of `mailbox`; None for another kind of source.
    pub fn of(mailbox: &Mailbox) -> Option<Settings> {
        match &mailbox.source {
            MailboxSource::Imap {
                host,
                port,
                security,
                username,
                folder,
                after_processing,
                idle,
                ..
            } => Some(Settings {
                host: host.clone(),
                port: *port,
                security: *security,
                username: username.clone(),
                folder: folder.clone(),
                after: after_processing.clone(),
                idle: *idle,
            }),
            MailboxSource::Maildir { .. } => None,
        }
    }
}

/// Capability names as advertised, compared without regard to case.
#[derive(Debug, Default, Clone)]
struct Caps(Vec<String>);

impl Caps {
    fn from_proto(list: &[async_imap::imap_proto::Capability<'_>]) -> Caps {
        use async_imap::imap_proto::Capability as C;
        Caps(
            list.iter()
                .map(|c| match c {
                    C::Imap4rev1 => "IMAP4rev1".to_string(),
                    C::Auth(m) => format!("AUTH={m}"),
                    C::Atom(a) => a.to_string(),
                })
                .collect(),
        )
    }

    fn from_session(caps: &async_imap::types::Capabilities) -> Caps {
        use async_imap::types::Capability as C;
        Caps(
            caps.iter()
                .map(|c| match c {
                    C::Imap4rev1 => "IMAP4rev1".to_string(),
                    C::Auth(m) => format!("AUTH={m}"),
                    C::Atom(a) => a.clone(),
                })
                .collect(),
        )
    }

    fn has(&self, name: &str) -> bool {
        self.0.iter().any(|c| c.eq_ignore_ascii_case(name))
    }
}

/// Why [`ImapSource::wait`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// The server reported a change (new mail, usually) during IDLE.
    Changed,
    /// The poll interval (or the IDLE re-issue time) passed.
    Interval,
    /// The daemon is stopping.
    Stop,
}

/// What the server offers that changes how this source works.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Features {
    pub idle: bool,
    pub r#move: bool,
    pub uidplus: bool,
}

/// A logged-in connection with the folder selected.
pub struct ImapSource {
    session: Option<Session<Stream>>,
    settings: Settings,
    features: Features,
    uidvalidity: u32,
    /// Highest UID handed out by `fetch`.
    cursor: u32,
    /// Highest UID acknowledged: everything up to it is taken in and done.
    acked: u32,
    rescan_below: Option<u32>,
    /// Listed but not yet handed out: (UID, size).
    pending: VecDeque<(u32, u64)>,
    tags: u32,
}

impl std::fmt::Debug for ImapSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImapSource")
            .field("settings", &self.settings)
            .field("features", &self.features)
            .field("uidvalidity", &self.uidvalidity)
            .field("acked", &self.acked)
            .finish_non_exhaustive()
    }
}

/// PLAIN SASL (RFC 4616): authorization identity empty.
struct Plain<'a> {
    user: &'a str,
    password: &'a str,
}

impl async_imap::Authenticator for Plain<'_> {
    type Response = Vec<u8>;

    fn process(&mut self, _challenge: &[u8]) -> Vec<u8> {
        format!("\0{}\0{}", self.user, self.password).into_bytes()
    }
}

/// Writes `tag command` on the raw connection.
async fn send<T>(conn: &mut Connection<T>, what: &str, line: &str) -> Result<(), ImapError>
where
    T: AsyncRead + AsyncWrite + Unpin + std::fmt::Debug + Send,
{
    within(what, COMMAND_TIMEOUT, async {
        let stream = conn.get_mut();
        stream.write_all(line.as_bytes()).await?;
        stream.write_all(b"\r\n").await?;
        stream.flush().await
    })
    .await?
    .map_err(io_error(what))
}

/// Runs one command and reads its answer, handing every untagged response
/// to `each`; fails unless the tagged answer is OK. (async-imap's own FETCH
/// and STORE streams do not look at the tagged status.)
async fn command<T>(
    conn: &mut Connection<T>,
    tags: &mut u32,
    what: &str,
    cmd: &str,
    limit: Duration,
    mut each: impl FnMut(&Response<'_>),
) -> Result<(), ImapError>
where
    T: AsyncRead + AsyncWrite + Unpin + std::fmt::Debug + Send,
{
    *tags += 1;
    let tag = format!("pd{tags}");
    send(conn, what, &format!("{tag} {cmd}")).await?;
    loop {
        let response = within(what, limit, conn.read_response())
            .await?
            .map_err(io_error(what))?
            .ok_or_else(|| ImapError::Closed {
                what: what.into(),
                text: String::new(),
            })?;
        match response.parsed() {
            Response::Done {
                tag: done,
                status,
                outcome,
            } if done.0 == tag => {
                let text = outcome.information.as_deref().unwrap_or("").to_string();
                return match status {
                    Status::Ok => Ok(()),
                    status => Err(ImapError::Refused {
                        what: what.into(),
                        status: match status {
                            Status::No => "NO",
                            Status::Bad => "BAD",
                            _ => "an unexpected status",
                        },
                        text,
                        try_create: matches!(outcome.code, Some(ResponseCode::TryCreate)),
                    }),
                };
            }
            Response::Data {
                status: Status::Bye,
                outcome,
            } => {
                return Err(ImapError::Closed {
                    what: what.into(),
                    text: outcome.information.as_deref().unwrap_or("").to_string(),
                });
            }
            other => each(other),
        }
    }
}

/// Reads the greeting; its capabilities when it lists them.
async fn greeting<T>(client: &mut Client<T>) -> Result<Option<Caps>, ImapError>
where
    T: AsyncRead + AsyncWrite + Unpin + std::fmt::Debug + Send,
{
    let what = "reading the server greeting";
    let response = within(what, COMMAND_TIMEOUT, client.read_response())
        .await?
        .map_err(io_error(what))?
        .ok_or_else(|| ImapError::Closed {
            what: what.into(),
            text: String::new(),
        })?;
    match response.parsed() {
        Response::Data {
            status: Status::Ok,
            outcome,
        } => Ok(match &outcome.code {
            Some(ResponseCode::Capabilities(list)) => Some(Caps::from_proto(list)),
            _ => None,
        }),
        Response::Data {
            status: Status::Bye,
            outcome,
        } => Err(ImapError::Closed {
            what: what.into(),
            text: outcome.information.as_deref().unwrap_or("").to_string(),
        }),
        other => Err(ImapError::Io {
            what: what.into(),
            source: io::Error::other(format!("unexpected greeting {other:?}")),
        }),
    }
}

/// Capabilities before login (after STARTTLS the earlier ones are void).
async fn capability<T>(client: &mut Client<T>, tags: &mut u32) -> Result<Caps, ImapError>
where
    T: AsyncRead + AsyncWrite + Unpin + std::fmt::Debug + Send,
{
    let mut caps = Caps::default();
    command(
        client,
        tags,
        "CAPABILITY",
        "CAPABILITY",
        COMMAND_TIMEOUT,
        |r| {
            if let Response::Capabilities(list) = r {
                caps = Caps::from_proto(list);
            }
        },
    )
    .await?;
    Ok(caps)
}

/// Logs in: AUTHENTICATE PLAIN when the server offers it, else LOGIN.
async fn log_in<T>(
    client: Client<T>,
    caps: &Caps,
    user: &str,
    password: &str,
) -> Result<Session<T>, ImapError>
where
    T: AsyncRead + AsyncWrite + Unpin + std::fmt::Debug + Send,
{
    let refused = |e: async_imap::error::Error| match e {
        async_imap::error::Error::No(detail) if !detail.contains("Unavailable") => {
            ImapError::Auth {
                user: user.into(),
                detail: server_text(&detail),
            }
        }
        async_imap::error::Error::Validate(v) => ImapError::Auth {
            user: user.into(),
            detail: format!("the user name or password cannot be sent: {v}"),
        },
        e => protocol("logging in")(e),
    };
    let login = async {
        if caps.has("AUTH=PLAIN") {
            client
                .authenticate("PLAIN", Plain { user, password })
                .await
                .map_err(|(e, _)| refused(e))
        } else if caps.has("LOGINDISABLED") {
            Err(ImapError::LoginDisabled)
        } else {
            client
                .login(user, password)
                .await
                .map_err(|(e, _)| refused(e))
        }
    };
    within("logging in", COMMAND_TIMEOUT, login).await?
}

/// The server's words in async-imap's `code: Some(X), info: Some("text")`:
/// `text [X]`.
fn server_text(detail: &str) -> String {
    let info = detail
        .split_once("info: Some(\"")
        .and_then(|(_, rest)| rest.rsplit_once("\")"))
        .map(|(text, _)| text.to_string());
    let code = detail
        .split_once("code: Some(")
        .and_then(|(_, rest)| rest.split_once(')'))
        .map(|(code, _)| code.to_string());
    match (info, code) {
        (Some(info), Some(code)) => format!("{info} [{code}]"),
        (Some(info), None) => info,
        _ => detail.to_string(),
    }
}

/// Compresses sorted UIDs into an IMAP set: `1:3,5,7:9`.
fn uid_set(uids: &[u32]) -> String {
    let mut sorted = uids.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut out = String::new();
    let mut i = 0;
    while i < sorted.len() {
        let start = sorted[i];
        let mut end = start;
        while i + 1 < sorted.len() && sorted[i + 1] == end + 1 {
            i += 1;
            end = sorted[i];
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}:{end}"));
        }
        i += 1;
    }
    out
}

/// An IMAP quoted string.
fn quoted(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Where to resume after SELECT: the stored point if it belongs to this
/// folder and UIDVALIDITY, else a rescan of the folder from its first UID.
fn resume_point(
    stored: &ImapState,
    folder: &str,
    uidvalidity: u32,
    uidnext: Option<u32>,
) -> ImapState {
    let fresh = |rescan_below| ImapState {
        folder: Some(folder.to_string()),
        uidvalidity: Some(uidvalidity),
        last_uid: 0,
        rescan_below,
    };
    // Without UIDNEXT every current message may be a re-read.
    let bound = Some(uidnext.unwrap_or(u32::MAX));
    match (&stored.folder, stored.uidvalidity) {
        (_, None) => fresh(None),
        (Some(f), _) if f != folder => fresh(bound),
        (_, Some(v)) if v == uidvalidity => ImapState {
            folder: Some(folder.to_string()),
            ..stored.clone()
        },
        _ => fresh(bound),
    }
}

impl ImapSource {
    /// Connects, logs in and selects the folder; `stored` is where the
    /// mailbox left off.
    pub async fn connect(
        settings: &Settings,
        password: &str,
        tls: &Arc<ClientConfig>,
        stored: &ImapState,
    ) -> Result<ImapSource, ImapError> {
        let mut tags = 0;
        let addr = format!("{}:{}", settings.host, settings.port);
        let tcp = within(
            &format!("connecting to {addr}"),
            CONNECT_TIMEOUT,
            TcpStream::connect((settings.host.as_str(), settings.port)),
        )
        .await?
        .map_err(|source| ImapError::Connect {
            addr: addr.clone(),
            source,
        })?;
        // Commands are small and answered one at a time: no Nagle delay.
        let _ = tcp.set_nodelay(true);
        let handshake = |tcp: TcpStream| async move {
            let name =
                ServerName::try_from(settings.host.clone()).map_err(|_| ImapError::ServerName {
                    host: settings.host.clone(),
                })?;
            let tls = within(
                "TLS handshake",
                CONNECT_TIMEOUT,
                TlsConnector::from(tls.clone()).connect(name, tcp),
            )
            .await?
            .map_err(|source| ImapError::Tls {
                host: settings.host.clone(),
                source,
            })?;
            Ok::<_, ImapError>(Stream::Tls(Box::new(tls)))
        };
        let (client, caps) = match settings.security {
            Security::None => {
                let mut client = Client::new(Stream::Plain(tcp));
                let caps = greeting(&mut client).await?;
                (client, caps)
            }
            Security::Tls => {
                let mut client = Client::new(handshake(tcp).await?);
                let caps = greeting(&mut client).await?;
                (client, caps)
            }
            Security::Starttls => {
                let mut client = Client::new(Stream::Plain(tcp));
                greeting(&mut client).await?;
                command(
                    &mut client,
                    &mut tags,
                    "STARTTLS",
                    "STARTTLS",
                    COMMAND_TIMEOUT,
                    |_| {},
                )
                .await?;
                // Anything the server sent after its OK is dropped with the
                // plain connection's buffer (no injected responses).
                let Stream::Plain(tcp) = client.into_inner() else {
                    return Err(ImapError::TlsSetup("STARTTLS on a TLS connection".into()));
                };
                (Client::new(handshake(tcp).await?), None)
            }
        };
        let mut client = client;
        let caps = match caps {
            Some(caps) => caps,
            None => capability(&mut client, &mut tags).await?,
        };
        let mut session = log_in(client, &caps, &settings.username, password).await?;

        let caps = within("CAPABILITY", COMMAND_TIMEOUT, session.capabilities())
            .await?
            .map_err(protocol("CAPABILITY"))?;
        let caps = Caps::from_session(&caps);
        let features = Features {
            idle: caps.has("IDLE"),
            r#move: caps.has("MOVE"),
            uidplus: caps.has("UIDPLUS"),
        };

        let selected = within("SELECT", COMMAND_TIMEOUT, session.select(&settings.folder))
            .await?
            .map_err(|e| match e {
                async_imap::error::Error::No(detail) => ImapError::Folder {
                    folder: settings.folder.clone(),
                    detail: format!("cannot select it: {detail}"),
                },
                e => protocol("SELECT")(e),
            })?;
        let uidvalidity = selected.uid_validity.ok_or_else(|| ImapError::Folder {
            folder: settings.folder.clone(),
            detail: "the server gave no UIDVALIDITY".into(),
        })?;
        let start = resume_point(stored, &settings.folder, uidvalidity, selected.uid_next);
        if let (Some(old), Some(bound)) = (stored.uidvalidity, start.rescan_below)
            && stored.rescan_below != start.rescan_below
        {
            warn!(
                folder = %settings.folder,
                old_folder = stored.folder.as_deref().unwrap_or(""),
                old_uidvalidity = old,
                uidvalidity,
                rescan_below = bound,
                "the folder's UIDVALIDITY changed (or another folder is configured): rescanning it; mail taken in before is recognised by Message-ID and only acknowledged"
            );
        }

        let mut source = ImapSource {
            session: Some(session),
            settings: settings.clone(),
            features,
            uidvalidity,
            cursor: start.last_uid,
            acked: start.last_uid,
            rescan_below: start.rescan_below,
            pending: VecDeque::new(),
            tags,
        };
        if let AfterProcessing::Move(target) = &settings.after {
            source.ensure_folder(target).await?;
        }
        info!(
            host = %settings.host,
            folder = %settings.folder,
            uidvalidity,
            last_uid = source.acked,
            messages = selected.exists,
            idle = features.idle,
            r#move = features.r#move,
            uidplus = features.uidplus,
            "IMAP connected"
        );
        Ok(source)
    }

    /// Where to resume next time: everything up to `last_uid` is done.
    pub fn state(&self) -> ImapState {
        ImapState {
            folder: Some(self.settings.folder.clone()),
            uidvalidity: Some(self.uidvalidity),
            last_uid: self.acked,
            rescan_below: self
                .rescan_below
                .filter(|&bound| self.acked.saturating_add(1) < bound),
        }
    }

    fn session(&mut self) -> Result<&mut Session<Stream>, ImapError> {
        self.session.as_mut().ok_or_else(|| ImapError::Closed {
            what: "IMAP".into(),
            text: String::new(),
        })
    }

    /// Runs a command on the session (see [`command`]).
    async fn run(
        &mut self,
        what: &str,
        cmd: &str,
        each: impl FnMut(&Response<'_>),
    ) -> Result<(), ImapError> {
        self.run_within(what, cmd, COMMAND_TIMEOUT, each).await
    }

    /// [`run`](Self::run), allowing `limit` for each response.
    async fn run_within(
        &mut self,
        what: &str,
        cmd: &str,
        limit: Duration,
        each: impl FnMut(&Response<'_>),
    ) -> Result<(), ImapError> {
        let mut tags = self.tags;
        let session = self.session()?;
        let result = command(session, &mut tags, what, cmd, limit, each).await;
        self.tags = tags;
        // Untagged EXISTS/EXPUNGE/FETCH land in a bounded channel; they are
        // of no use here (the next listing asks the server again).
        if let Some(session) = &self.session {
            while session.unsolicited_responses.try_recv().is_ok() {}
        }
        result
    }

    /// Creates `folder` unless it exists (the target of `move:`).
    async fn ensure_folder(&mut self, folder: &str) -> Result<(), ImapError> {
        let mut exists = false;
        let list = format!("LIST \"\" {}", quoted(folder));
        self.run("LIST", &list, |r| {
            if let Response::MailboxData(async_imap::imap_proto::MailboxDatum::List(data)) = r {
                exists |= data.name.as_ref() == folder;
            }
        })
        .await?;
        if exists {
            return Ok(());
        }
        match self
            .run("CREATE", &format!("CREATE {}", quoted(folder)), |_| {})
            .await
        {
            Ok(()) => {
                info!(folder, "created the folder mail is moved to");
                Ok(())
            }
            // Created meanwhile by someone else.
            Err(ImapError::Refused { text, .. }) if text.to_lowercase().contains("exists") => {
                Ok(())
            }
            Err(ImapError::Refused { text, .. }) => Err(ImapError::Folder {
                folder: folder.into(),
                detail: format!("cannot create it: {text}"),
            }),
            Err(e) => Err(e),
        }
    }

    /// Asks the server for the messages after the cursor.
    async fn list_new(&mut self) -> Result<(), ImapError> {
        // NOOP lets the server report mail delivered since the last command.
        self.run("NOOP", "NOOP", |_| {}).await?;
        let after = self.cursor;
        let mut found = BTreeMap::new();
        let query = format!("UID FETCH {}:* (UID RFC822.SIZE)", after.saturating_add(1));
        self.run("listing new mail", &query, |r| {
            if let Response::Fetch(_, attributes) = r {
                let mut uid = None;
                let mut size = 0;
                for a in attributes {
                    match a {
                        AttributeValue::Uid(u) => uid = Some(*u),
                        AttributeValue::Rfc822Size(s) => size = u64::from(*s),
                        _ => {}
                    }
                }
                // `N:*` always includes the last message, even below N.
                if let Some(uid) = uid.filter(|&u| u > after) {
                    found.insert(uid, size);
                }
            }
        })
        .await?;
        self.pending = found.into_iter().collect();
        Ok(())
    }

    /// Up to `max` new messages (fewer when they are big), in UID order.
    pub async fn fetch_batch(&mut self, max: usize) -> Result<Vec<Incoming>, ImapError> {
        if self.pending.is_empty() {
            self.list_new().await?;
        }
        let mut uids = Vec::new();
        let mut bytes = 0u64;
        let mut largest = 0u64;
        while let Some(&(uid, size)) = self.pending.front() {
            if uids.len() >= max.max(1) || (!uids.is_empty() && bytes + size > BATCH_BYTES) {
                break;
            }
            uids.push(uid);
            bytes += size;
            largest = largest.max(size);
            self.pending.pop_front();
        }
        let Some(&last) = uids.last() else {
            return Ok(Vec::new());
        };
        let mut bodies: BTreeMap<u32, Vec<u8>> = BTreeMap::new();
        let query = format!("UID FETCH {} (UID BODY.PEEK[])", uid_set(&uids));
        // One response carries a whole message: a big one on a slow link
        // gets time for it (at least 64 KiB/s).
        let limit = COMMAND_TIMEOUT + Duration::from_secs(largest / MIN_RATE);
        self.run_within("fetching mail", &query, limit, |r| {
            if let Response::Fetch(_, attributes) = r {
                let mut uid = None;
                let mut body = None;
                for a in attributes {
                    match a {
                        AttributeValue::Uid(u) => uid = Some(*u),
                        AttributeValue::BodySection {
                            section: None,
                            data: Some(data),
                            ..
                        } => body = Some(data.to_vec()),
                        _ => {}
                    }
                }
                if let (Some(uid), Some(body)) = (uid, body) {
                    bodies.insert(uid, body);
                }
            }
        })
        .await?;
        if bodies.len() < uids.len() {
            // Expunged meanwhile by another client (nothing to take in), or
            // a server hiccup: only the first is safe to skip, so look.
            let missing: Vec<u32> = uids
                .iter()
                .copied()
                .filter(|u| !bodies.contains_key(u))
                .collect();
            let mut still_there = Vec::new();
            self.run(
                "checking missing mail",
                &format!("UID FETCH {} (UID)", uid_set(&missing)),
                |r| {
                    if let Response::Fetch(_, attributes) = r {
                        for a in attributes {
                            if let AttributeValue::Uid(u) = a {
                                still_there.push(*u);
                            }
                        }
                    }
                },
            )
            .await?;
            if let Some(uid) = still_there.iter().find(|u| missing.contains(u)) {
                return Err(ImapError::Io {
                    what: "fetching mail".into(),
                    source: io::Error::other(format!("the server sent no body for UID {uid}")),
                });
            }
            debug!(
                missing = uid_set(&missing),
                "messages expunged by someone else before they were fetched"
            );
        }
        self.cursor = last;
        let rescan_below = self.rescan_below;
        Ok(bodies
            .into_iter()
            .map(|(uid, raw)| Incoming {
                source_ref: format!("{}:{uid}", self.uidvalidity),
                raw,
                location: Location::Uid(uid),
                may_be_reread: rescan_below.is_some_and(|bound| uid < bound),
            })
            .collect())
    }

    /// Applies `after_processing` to committed messages, all in one go.
    pub async fn acknowledge_uids(&mut self, uids: &[u32]) -> Result<(), ImapError> {
        let Some(&highest) = uids.iter().max() else {
            return Ok(());
        };
        let set = uid_set(uids);
        match self.settings.after.clone() {
            AfterProcessing::Seen => {
                self.store_flag(&set, "\\Seen").await?;
            }
            AfterProcessing::Delete => {
                self.store_flag(&set, "\\Deleted").await?;
                self.expunge(&set).await?;
            }
            AfterProcessing::Move(target) => match self.move_to(&set, &target).await {
                Err(ImapError::Refused {
                    try_create: true, ..
                }) => {
                    // The target folder was deleted meanwhile.
                    self.ensure_folder(&target).await?;
                    self.move_to(&set, &target).await?;
                }
                other => other?,
            },
        }
        self.acked = self.acked.max(highest);
        Ok(())
    }

    async fn store_flag(&mut self, set: &str, flag: &str) -> Result<(), ImapError> {
        self.run(
            "flagging processed mail",
            &format!("UID STORE {set} +FLAGS.SILENT ({flag})"),
            |_| {},
        )
        .await
    }

    /// UID EXPUNGE (UIDPLUS) removes only these messages; without it plain
    /// EXPUNGE also removes whatever else is flagged `\Deleted`.
    async fn expunge(&mut self, set: &str) -> Result<(), ImapError> {
        if self.features.uidplus {
            self.run(
                "expunging processed mail",
                &format!("UID EXPUNGE {set}"),
                |_| {},
            )
            .await
        } else {
            self.run("expunging processed mail", "EXPUNGE", |_| {})
                .await
        }
    }

    async fn move_to(&mut self, set: &str, target: &str) -> Result<(), ImapError> {
        let target = quoted(target);
        if self.features.r#move {
            self.run(
                "moving processed mail",
                &format!("UID MOVE {set} {target}"),
                |_| {},
            )
            .await
        } else {
            self.run(
                "copying processed mail",
                &format!("UID COPY {set} {target}"),
                |_| {},
            )
            .await?;
            self.store_flag(set, "\\Deleted").await?;
            self.expunge(set).await
        }
    }

    /// Waits for new mail: IDLE when configured and offered (ended after
    /// `interval`, at most [`IDLE_MAX`], so the folder is also polled and a
    /// dead connection noticed), else a sleep of `interval`.
    pub async fn wait(
        &mut self,
        interval: Duration,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<Wake, ImapError> {
        if *stop.borrow() {
            return Ok(Wake::Stop);
        }
        if !(self.settings.idle && self.features.idle) {
            return Ok(tokio::select! {
                _ = tokio::time::sleep(interval) => Wake::Interval,
                _ = stop.changed() => Wake::Stop,
            });
        }
        let cycle = interval.min(IDLE_MAX);
        let session = self.session.take().ok_or_else(|| ImapError::Closed {
            what: "IDLE".into(),
            text: String::new(),
        })?;
        let mut handle = session.idle();
        within("IDLE", COMMAND_TIMEOUT, handle.init())
            .await?
            .map_err(protocol("IDLE"))?;
        let woke = {
            // The library's own timeout restarts at every "* OK Still here";
            // the sleep below bounds the whole cycle.
            let (idle, _interrupt) = handle.wait_with_timeout(cycle + COMMAND_TIMEOUT);
            tokio::select! {
                result = idle => match result.map_err(protocol("IDLE"))? {
                    IdleResponse::NewData(data) => match data.parsed() {
                        Response::Data { status: Status::Bye, outcome } => {
                            return Err(ImapError::Closed {
                                what: "IDLE".into(),
                                text: outcome.information.as_deref().unwrap_or("").to_string(),
                            });
                        }
                        _ => Wake::Changed,
                    },
                    IdleResponse::Timeout => Wake::Interval,
                    // Nobody interrupted: the stream ended.
                    IdleResponse::ManualInterrupt => {
                        return Err(ImapError::Closed { what: "IDLE".into(), text: String::new() });
                    }
                },
                _ = tokio::time::sleep(cycle) => Wake::Interval,
                _ = stop.changed() => Wake::Stop,
            }
        };
        let session = within("ending IDLE", COMMAND_TIMEOUT, handle.done())
            .await?
            .map_err(protocol("ending IDLE"))?;
        while session.unsolicited_responses.try_recv().is_ok() {}
        self.session = Some(session);
        Ok(woke)
    }

    /// LOGOUT, best effort and briefly (the daemon is stopping or done).
    pub async fn logout(mut self) {
        if let Some(session) = self.session.as_mut() {
            let _ = within("LOGOUT", LOGOUT_TIMEOUT, session.logout()).await;
        }
    }
}

impl Source for ImapSource {
    async fn fetch(&mut self, max: usize) -> Result<Vec<Incoming>, SourceError> {
        Ok(self.fetch_batch(max).await?)
    }

    async fn acknowledge(&mut self, message: &Incoming) -> Result<(), SourceError> {
        self.acknowledge_all(std::slice::from_ref(message)).await
    }

    async fn acknowledge_all(&mut self, messages: &[Incoming]) -> Result<(), SourceError> {
        let uids: Vec<u32> = messages
            .iter()
            .filter_map(|m| match m.location {
                Location::Uid(uid) => Some(uid),
                Location::File(_) => None,
            })
            .collect();
        Ok(self.acknowledge_uids(&uids).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uid_sets_are_compressed() {
        assert_eq!(uid_set(&[5, 1, 2, 3, 7, 9, 8]), "1:3,5,7:9");
        assert_eq!(uid_set(&[4]), "4");
        assert_eq!(uid_set(&[]), "");
        assert_eq!(
            uid_set(&[u32::MAX - 1, u32::MAX]),
            format!("{}:{}", u32::MAX - 1, u32::MAX)
        );
    }

    #[test]
    fn resume_points() {
        let stored = ImapState {
            folder: Some("INBOX".into()),
            uidvalidity: Some(7),
            last_uid: 40,
            rescan_below: None,
        };
        // Same folder, same UIDVALIDITY: go on.
        assert_eq!(resume_point(&stored, "INBOX", 7, Some(50)), stored);
        // New UIDVALIDITY: rescan everything below UIDNEXT.
        let changed = resume_point(&stored, "INBOX", 8, Some(50));
        assert_eq!((changed.last_uid, changed.rescan_below), (0, Some(50)));
        assert_eq!(changed.uidvalidity, Some(8));
        // Another folder: the same, whatever its UIDVALIDITY.
        let other = resume_point(&stored, "Support", 7, Some(3));
        assert_eq!((other.last_uid, other.rescan_below), (0, Some(3)));
        // Never read: everything is new, nothing to check.
        let first = resume_point(&ImapState::default(), "INBOX", 7, Some(50));
        assert_eq!((first.last_uid, first.rescan_below), (0, None));
        // A rescan in progress survives a reconnect.
        let rescanning = ImapState {
            rescan_below: Some(30),
            last_uid: 10,
            ..stored.clone()
        };
        assert_eq!(resume_point(&rescanning, "INBOX", 7, Some(50)), rescanning);
    }

    #[test]
    fn server_words_are_kept_plain() {
        assert_eq!(
            server_text(
                r#"code: Some(AuthenticationFailed), info: Some("Authentication failed.")"#
            ),
            "Authentication failed. [AuthenticationFailed]"
        );
        assert_eq!(
            server_text(r#"code: None, info: Some("Bad password")"#),
            "Bad password"
        );
        assert_eq!(server_text("odd"), "odd");
    }

    #[test]
    fn quoting() {
        assert_eq!(quoted(r#"Arch"ive\x"#), r#""Arch\"ive\\x""#);
    }

    /// A scripted server on an in-memory pipe: answers each expected line.
    async fn script(
        server: tokio::io::DuplexStream,
        greeting: &'static str,
        steps: Vec<(&'static str, &'static str)>,
    ) -> Vec<String> {
        use tokio::io::{AsyncBufReadExt, BufReader};
        let (read, mut write) = tokio::io::split(server);
        let mut lines = BufReader::new(read).lines();
        write.write_all(greeting.as_bytes()).await.unwrap();
        let mut seen = Vec::new();
        let mut tag = String::new();
        for (expect, answer) in steps {
            let line = lines.next_line().await.unwrap().unwrap_or_default();
            assert!(line.contains(expect), "expected `{expect}`, got `{line}`");
            // A SASL response line carries no tag: answer with the command's.
            if let Some((t, _)) = line.split_once(' ') {
                tag = t.to_string();
            }
            write
                .write_all(answer.replace("TAG", &tag).as_bytes())
                .await
                .unwrap();
            seen.push(line);
        }
        seen
    }

    #[tokio::test]
    async fn login_uses_authenticate_plain_when_offered_else_login() {
        // AUTH=PLAIN offered: AUTHENTICATE PLAIN with "\0user\0password".
        let (client_side, server_side) = tokio::io::duplex(4096);
        let server = tokio::spawn(script(
            server_side,
            "* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] hi\r\n",
            vec![
                ("AUTHENTICATE PLAIN", "+ \r\n"),
                // base64("\0support\0s3cret")
                ("AHN1cHBvcnQAczNjcmV0", "TAG OK done\r\n"),
            ],
        ));
        let mut client = Client::new(client_side);
        let caps = greeting(&mut client).await.unwrap().unwrap();
        log_in(client, &caps, "support", "s3cret").await.unwrap();
        server.await.unwrap();

        // No AUTH=PLAIN: LOGIN, with the password quoted.
        let (client_side, server_side) = tokio::io::duplex(4096);
        let server = tokio::spawn(script(
            server_side,
            "* OK [CAPABILITY IMAP4rev1 AUTH=LOGIN] hi\r\n",
            vec![(r#"LOGIN "support" "s\"3""#, "TAG OK done\r\n")],
        ));
        let mut client = Client::new(client_side);
        let caps = greeting(&mut client).await.unwrap().unwrap();
        log_in(client, &caps, "support", "s\"3").await.unwrap();
        server.await.unwrap();

        // A refused login is an authentication error (retried slowly).
        let (client_side, server_side) = tokio::io::duplex(4096);
        let server = tokio::spawn(script(
            server_side,
            "* OK hi\r\n",
            vec![
                ("CAPABILITY", "* CAPABILITY IMAP4rev1\r\nTAG OK\r\n"),
                (
                    "LOGIN",
                    "TAG NO [AUTHENTICATIONFAILED] Authentication failed.\r\n",
                ),
            ],
        ));
        let mut client = Client::new(client_side);
        assert!(greeting(&mut client).await.unwrap().is_none());
        let mut tags = 0;
        let caps = capability(&mut client, &mut tags).await.unwrap();
        let e = log_in(client, &caps, "support", "wrong")
            .await
            .err()
            .unwrap();
        assert!(e.needs_attention(), "{e}");
        assert!(
            e.to_string().contains("refused the login of `support`"),
            "{e}"
        );
        server.await.unwrap();

        // LOGINDISABLED without AUTH=PLAIN: say what to configure.
        let caps = Caps(vec!["IMAP4rev1".into(), "LOGINDISABLED".into()]);
        let (client_side, _server_side) = tokio::io::duplex(64);
        let e = log_in(Client::new(client_side), &caps, "u", "p")
            .await
            .err()
            .unwrap();
        assert!(matches!(e, ImapError::LoginDisabled));
    }

    #[tokio::test]
    async fn a_refused_command_is_an_error_even_for_fetch() {
        let (client_side, server_side) = tokio::io::duplex(4096);
        let server = tokio::spawn(script(
            server_side,
            "* OK hi\r\n",
            vec![(
                "UID FETCH 1:* (UID RFC822.SIZE)",
                "* 1 FETCH (UID 4 RFC822.SIZE 10)\r\nTAG NO [SERVERBUG] oops\r\n",
            )],
        ));
        let mut client = Client::new(client_side);
        greeting(&mut client).await.unwrap();
        let mut tags = 0;
        let mut fetched = 0;
        let e = command(
            &mut client,
            &mut tags,
            "listing",
            "UID FETCH 1:* (UID RFC822.SIZE)",
            COMMAND_TIMEOUT,
            |r| {
                if matches!(r, Response::Fetch(..)) {
                    fetched += 1;
                }
            },
        )
        .await
        .err()
        .unwrap();
        assert_eq!(fetched, 1);
        assert!(matches!(e, ImapError::Refused { status: "NO", .. }), "{e}");
        server.await.unwrap();
    }
}
