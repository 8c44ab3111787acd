//! A minimal SMTP server on loopback for tests (RFC 5321's commands that a client needs to
//! send a message): it records what it receives, can be stopped and restarted on the same port,
//! told to refuse a recipient (550) or every login (535).

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// Undoes quoted-printable's soft line breaks and the escapes a link contains.
pub fn decode_qp(m: &str) -> String {
    m.replace("=\r\n", "").replace("=\n", "").replace("=3D", "=")
}

/// What the server received: (recipient, raw message).
type Received = Arc<Mutex<Vec<(String, String)>>>;

/// A minimal SMTP server (RFC 5321's commands that a client needs to send one message).
#[derive(Debug)]
pub struct SmtpServer {
    pub port: u16,
    received: Received,
    refuse: Arc<Mutex<Vec<String>>>,
    /// When set, every login is refused (535); else every login is accepted.
    refuse_logins: Arc<std::sync::atomic::AtomicBool>,
    task: Option<tokio::task::JoinHandle<()>>,
    /// The open connections, closed by `stop` (a client may keep a pooled connection).
    connections: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl SmtpServer {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("test SMTP server");
        let port = listener.local_addr().expect("test SMTP server").port();
        let mut s = SmtpServer {
            port,
            received: Default::default(),
            refuse: Default::default(),
            refuse_logins: Default::default(),
            task: None,
            connections: Default::default(),
        };
        s.serve(listener);
        s
    }

    fn serve(&mut self, listener: TcpListener) {
        let (received, refuse, logins) = (self.received.clone(), self.refuse.clone(), self.refuse_logins.clone());
        let connections = self.connections.clone();
        self.task = Some(tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else { return };
                let (received, refuse) = (received.clone(), refuse.clone());
                let refuse_logins = logins.load(std::sync::atomic::Ordering::SeqCst);
                let conn = tokio::spawn(async move {
                    let (r, mut w) = sock.into_split();
                    let mut lines = BufReader::new(r).lines();
                    let _ = w.write_all(b"220 test ESMTP\r\n").await;
                    let mut rcpt = String::new();
                    while let Ok(Some(line)) = lines.next_line().await {
                        let upper = line.to_ascii_uppercase();
                        let reply: &[u8] = if upper.starts_with("EHLO") {
                            b"250-test\r\n250-8BITMIME\r\n250 AUTH PLAIN\r\n"
                        } else if upper.starts_with("AUTH") && refuse_logins {
                            b"535 5.7.8 credentials refused\r\n"
                        } else if upper.starts_with("AUTH") {
                            b"235 2.7.0 accepted\r\n"
                        } else if upper.starts_with("RCPT TO:") {
                            rcpt = line[8..].trim().trim_start_matches('<').trim_end_matches('>').to_owned();
                            if refuse.lock().expect("test SMTP server").contains(&rcpt) {
                                b"550 5.1.1 no such mailbox\r\n"
                            } else {
                                b"250 OK\r\n"
                            }
                        } else if upper == "DATA" {
                            let _ = w.write_all(b"354 go ahead\r\n").await;
                            let mut body = String::new();
                            while let Ok(Some(l)) = lines.next_line().await {
                                if l == "." {
                                    break;
                                }
                                body.push_str(&l);
                                body.push('\n');
                            }
                            received.lock().expect("test SMTP server").push((rcpt.clone(), body));
                            b"250 queued\r\n"
                        } else if upper == "QUIT" {
                            let _ = w.write_all(b"221 bye\r\n").await;
                            return;
                        } else {
                            b"250 OK\r\n"
                        };
                        if w.write_all(reply).await.is_err() {
                            return;
                        }
                    }
                });
                connections.lock().expect("test SMTP server").push(conn.abort_handle());
            }
        }));
    }

    fn close_connections(&self) {
        for c in self.connections.lock().expect("test SMTP server").drain(..) {
            c.abort();
        }
    }

    /// Stops listening and closes every open connection (the port refuses connections until
    /// `restart`).
    pub fn stop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
        self.close_connections();
    }

    /// Stops listening, closes every open connection and waits until the port is free.
    pub async fn stopped(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
            let _ = t.await;
        }
        self.close_connections();
    }

    pub async fn restart(&mut self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port)).await.expect("test SMTP server");
        self.serve(listener);
    }

    pub fn received(&self) -> Vec<(String, String)> {
        self.received.lock().expect("test SMTP server").clone()
    }

    /// Refuses `rcpt` for good (550) from now on.
    pub fn refuse(&self, rcpt: &str) {
        self.refuse.lock().expect("test SMTP server").push(rcpt.to_owned());
    }

    /// Refuses (`true`) or accepts every login from the next connection on.
    pub fn refuse_logins(&self, refuse: bool) {
        self.refuse_logins.store(refuse, std::sync::atomic::Ordering::SeqCst);
    }

    /// The messages to `to`, decoded enough to read (quoted-printable soft breaks and `=3D`).
    pub fn messages_to(&self, to: &str) -> Vec<String> {
        self.received().into_iter().filter(|(r, _)| r == to).map(|(_, m)| decode_qp(&m)).collect()
    }

    /// The token of the last link to `path` mailed to `to`.
    pub fn last_token(&self, to: &str, path: &str) -> Option<String> {
        let needle = format!("{path}?token=");
        self.messages_to(to).iter().rev().find_map(|m| {
            let at = m.find(&needle)? + needle.len();
            let token: String =
                m[at..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_').collect();
            (!token.is_empty()).then_some(token)
        })
    }
}
