//! A small HTTP/1.1 client for a dashboard's API, which can also send what a browser never
//! would. Used by the dashboard's tests and by the namespace tests of `crates/testapps`.
#![allow(dead_code, unreachable_pub)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::Value;

/// A started `mpicr dashboard`.
#[derive(Debug, Clone)]
pub struct Dashboard {
    pub port: u16,
    pub token: String,
    /// What it printed: `http://127.0.0.1:PORT/?token=TOKEN`.
    pub url: String,
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {self:?}"))
    }

    /// The sentence of an error answer.
    pub fn error(&self) -> String {
        self.json()["error"]
            .as_str()
            .unwrap_or_else(|| panic!("an error sentence: {self:?}"))
            .to_owned()
    }
}

impl Dashboard {
    /// The dashboard at `url`, `http://127.0.0.1:PORT/?token=TOKEN`.
    pub fn from_url(url: &str) -> Dashboard {
        let rest = url
            .strip_prefix("http://127.0.0.1:")
            .unwrap_or_else(|| panic!("a loopback URL, not `{url}`"));
        let (port, token) = rest
            .split_once("/?token=")
            .unwrap_or_else(|| panic!("a URL with a token, not `{url}`"));
        Dashboard {
            port: port.parse().expect("a port"),
            token: token.to_owned(),
            url: url.to_owned(),
        }
    }

    /// Sends `request` as it is (it should say `Connection: close`) and reads the answer.
    pub fn raw(&self, request: &[u8]) -> Reply {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .expect("a timeout");
        stream.write_all(request).expect("send");
        let mut bytes = Vec::new();
        stream.read_to_end(&mut bytes).expect("receive");
        parse_reply(&bytes)
    }

    /// A request with the token as a bearer header (`Some`) or none.
    pub fn request(&self, method: &str, path: &str, auth: Option<&str>, body: &str) -> Reply {
        let auth = auth.map_or_else(String::new, |t| format!("Authorization: Bearer {t}\r\n"));
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Content-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        self.raw(request.as_bytes())
    }

    pub fn get(&self, path: &str) -> Reply {
        self.request("GET", path, Some(&self.token.clone()), "")
    }

    pub fn post(&self, path: &str, body: &str) -> Reply {
        self.request("POST", path, Some(&self.token.clone()), body)
    }

    /// The first server-sent event of `/api/events` (its `event:` and `data:` lines) and the
    /// answer's headers.
    pub fn first_event(&self) -> (Reply, String) {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("a timeout");
        let request = format!(
            "GET /api/events?token={} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
            self.token
        );
        stream.write_all(request.as_bytes()).expect("send");
        let mut bytes = Vec::new();
        let mut buf = [0u8; 4096];
        let head_end = loop {
            let n = stream.read(&mut buf).expect("receive");
            assert!(
                n > 0,
                "the event stream closed: {}",
                String::from_utf8_lossy(&bytes)
            );
            bytes.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&bytes);
            if let Some(head) = text.find("\r\n\r\n")
                && let Some(data) = text[head..].find("data: ")
                && text[head + data..].contains("\n\n")
            {
                break head;
            }
        };
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let head = parse_reply(&text.as_bytes()[..head_end + 4]);
        (head, text[head_end + 4..].to_owned())
    }
}

/// Status line, headers and body (de-chunked) of an HTTP/1.1 answer.
fn parse_reply(bytes: &[u8]) -> Reply {
    let text = String::from_utf8_lossy(bytes);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("an HTTP answer, not {text:?}"));
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("a status line in {text:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    let body = if chunked {
        let mut out = String::new();
        let mut rest = body;
        while let Some((size, after)) = rest.split_once("\r\n") {
            let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            if size == 0 || after.len() < size {
                break;
            }
            out.push_str(&after[..size]);
            rest = after[size..].trim_start_matches("\r\n");
        }
        out
    } else {
        body.to_owned()
    };
    Reply {
        status,
        headers,
        body,
    }
}
