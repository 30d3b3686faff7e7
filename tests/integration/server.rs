//! An HTTP/1.1 server on 127.0.0.1 for the download tests, with misbehaviours on demand.
//! It serves a map of paths to routes and logs every request it sees.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

#[derive(Clone)]
pub enum Route {
    /// The bytes, honouring `Range: bytes=N-` with 206.
    Bytes(Arc<Vec<u8>>),
    /// Like Bytes, but ignores Range (always 200 with everything).
    NoRange(Arc<Vec<u8>>),
    /// Answers a Range request with 206 but the whole body (Content-Range bytes 0-...): a
    /// server that claims to resume and does not.
    WrongRange(Arc<Vec<u8>>),
    /// The first request gets the headers and half the body, then the connection closes;
    /// later requests are served by the inner route.
    DropFirst(Box<Route>),
    /// Headers and 1 KiB of body, then silence for a minute.
    Stall(Arc<Vec<u8>>),
    /// The first request gets this status, later ones the inner route.
    FailFirst(u16, Box<Route>),
    Redirect(String),
    Status(u16),
}

#[derive(Debug, Clone)]
pub struct Logged {
    pub path: String,
    pub range: Option<String>,
}

pub struct Server {
    pub port: u16,
    pub log: Arc<Mutex<Vec<Logged>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    pub fn start(routes: Vec<(&str, Route)>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let routes: Arc<HashMap<String, Route>> = Arc::new(
            routes
                .into_iter()
                .map(|(p, r)| (p.to_string(), r))
                .collect(),
        );
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(HashMap::<String, usize>::new()));
        let (l2, s2) = (log.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (routes, log, seen) = (routes.clone(), l2.clone(), seen.clone());
                std::thread::spawn(move || {
                    let _ = handle(conn, &routes, &log, &seen);
                });
            }
        });
        Server {
            port,
            log,
            stop,
            thread: Some(thread),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn requests(&self) -> Vec<Logged> {
        self.log.lock().unwrap().clone()
    }

    /// Stops accepting; later connections are refused.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown();
    }
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

fn handle(
    mut conn: TcpStream,
    routes: &HashMap<String, Route>,
    log: &Mutex<Vec<Logged>>,
    seen: &Mutex<HashMap<String, usize>>,
) -> std::io::Result<()> {
    COUNTER.fetch_add(1, Ordering::SeqCst);
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
    let mut range = None;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h == "\r\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("range") {
                range = Some(v.trim().to_string());
            }
        }
    }
    log.lock().unwrap().push(Logged {
        path: path.clone(),
        range: range.clone(),
    });
    let n = {
        let mut s = seen.lock().unwrap();
        let e = s.entry(path.clone()).or_insert(0);
        *e += 1;
        *e
    };
    let Some(route) = routes.get(&path) else {
        return respond(&mut conn, 404, &[], b"not found");
    };
    serve(&mut conn, route, range.as_deref(), n)
}

fn serve(
    conn: &mut TcpStream,
    route: &Route,
    range: Option<&str>,
    n: usize,
) -> std::io::Result<()> {
    match route {
        Route::Status(code) => respond(conn, *code, &[], b"nope"),
        Route::Redirect(to) => respond(conn, 302, &[("Location", to.as_str())], b""),
        Route::FailFirst(code, inner) => {
            if n == 1 {
                respond(conn, *code, &[], b"try later")
            } else {
                serve(conn, inner, range, n)
            }
        }
        Route::DropFirst(inner) => {
            if n == 1 {
                let data = match inner.as_ref() {
                    Route::Bytes(d) | Route::NoRange(d) | Route::WrongRange(d) => d.clone(),
                    _ => unreachable!(),
                };
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    data.len()
                );
                conn.write_all(head.as_bytes())?;
                conn.write_all(&data[..data.len() / 2])?;
                conn.flush()?;
                conn.shutdown(std::net::Shutdown::Both)
            } else {
                serve(conn, inner, range, n)
            }
        }
        Route::Stall(data) => {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                data.len()
            );
            conn.write_all(head.as_bytes())?;
            conn.write_all(&data[..1024])?;
            conn.flush()?;
            std::thread::sleep(Duration::from_secs(60));
            Ok(())
        }
        Route::NoRange(data) => respond(conn, 200, &[], data),
        Route::WrongRange(data) => match range {
            Some(_) => {
                let cr = format!("bytes 0-{}/{}", data.len() - 1, data.len());
                respond(conn, 206, &[("Content-Range", cr.as_str())], data)
            }
            None => respond(conn, 200, &[], data),
        },
        Route::Bytes(data) => {
            let start = range
                .and_then(|r| r.strip_prefix("bytes="))
                .and_then(|r| r.strip_suffix('-'))
                .and_then(|r| r.parse::<usize>().ok());
            match start {
                Some(s) if s < data.len() => {
                    let cr = format!("bytes {s}-{}/{}", data.len() - 1, data.len());
                    respond(conn, 206, &[("Content-Range", cr.as_str())], &data[s..])
                }
                Some(_) => respond(conn, 416, &[], b""),
                None => respond(conn, 200, &[("Accept-Ranges", "bytes")], data),
            }
        }
    }
}

fn respond(
    conn: &mut TcpStream,
    code: u16,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<()> {
    let reason = match code {
        200 => "OK",
        206 => "Partial Content",
        302 => "Found",
        404 => "Not Found",
        416 => "Range Not Satisfiable",
        503 => "Service Unavailable",
        _ => "Status",
    };
    let mut head = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    conn.write_all(head.as_bytes())?;
    conn.write_all(body)?;
    conn.flush()
}
