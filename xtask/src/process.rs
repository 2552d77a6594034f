//! Running a child process with a deadline while reading its output.
//!
//! QEMU (nested and plain) and the VMM (native) are all run the same way:
//! standard input closed, standard output and error read line by line as
//! they arrive, and the process killed if it outlives its deadline, so a
//! wedged guest fails fast instead of hanging the caller.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::Result;

/// Which output stream a line came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pipe {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// How a bounded run ended.
#[derive(Debug)]
pub enum Ended {
    /// The process exited by itself.
    Exited(ExitStatus),
    /// The deadline passed and the process was killed.
    Killed,
}

/// Text for a child's standard input.
#[derive(Clone, Copy, Debug)]
pub struct Feed<'a> {
    /// What to write, once.
    pub text: &'a [u8],
    /// Write it when the first output line containing this arrives; at once
    /// when `None`.
    pub after: Option<&'a str>,
}

/// Runs `cmd` with standard input closed, handing every line it prints to
/// `on_line` (without its line ending and any `\r`; invalid UTF-8 is
/// replaced, never a reason to stop reading). Kills it once `timeout` has
/// passed.
pub fn run_bounded(
    cmd: &mut Command,
    timeout: Duration,
    on_line: impl FnMut(Pipe, String),
) -> Result<Ended> {
    run_bounded_fed(cmd, timeout, None, on_line)
}

/// [`run_bounded`], with `feed` written to the child's standard input when
/// given (a pipe then, which stays open until the child's output ends, so
/// the child never sees its input end early).
pub fn run_bounded_fed(
    cmd: &mut Command,
    timeout: Duration,
    feed: Option<Feed<'_>>,
    mut on_line: impl FnMut(Pipe, String),
) -> Result<Ended> {
    let shown = format!("{:?}", cmd.get_program());
    let mut child = cmd
        .stdin(if feed.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {shown}: {e}"))?;
    let (tx, rx) = mpsc::channel::<(Pipe, String)>();
    let pipes: [(Pipe, Option<Box<dyn Read + Send>>); 2] = [
        (Pipe::Stdout, child.stdout.take().map(|p| Box::new(p) as _)),
        (Pipe::Stderr, child.stderr.take().map(|p| Box::new(p) as _)),
    ];
    let readers: Vec<_> = pipes
        .into_iter()
        .filter_map(|(pipe, stream)| Some((pipe, stream?)))
        .map(|(pipe, stream)| {
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream);
                let mut buf = Vec::new();
                loop {
                    buf.clear();
                    match reader.read_until(b'\n', &mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {
                            let line = String::from_utf8_lossy(&buf).replace('\r', "");
                            let line = line.trim_end_matches('\n').to_string();
                            if tx.send((pipe, line)).is_err() {
                                break;
                            }
                        }
                    }
                }
            })
        })
        .collect();
    drop(tx);

    let mut stdin = child.stdin.take();
    let mut pending = feed;
    if let Some(Feed { text, after: None }) = pending {
        write_input(&mut stdin, text);
        pending = None;
    }

    let deadline = Instant::now() + timeout;
    let killed = loop {
        let now = Instant::now();
        if now >= deadline {
            let _ = child.kill();
            break true;
        }
        match rx.recv_timeout(deadline - now) {
            Ok((pipe, line)) => {
                if let Some(Feed {
                    text,
                    after: Some(after),
                }) = pending
                {
                    if line.contains(after) {
                        write_input(&mut stdin, text);
                        pending = None;
                    }
                }
                on_line(pipe, line)
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break false,
        }
    };
    // The output has ended (or the child was killed): its input can close.
    drop(stdin);
    let status = child
        .wait()
        .map_err(|e| format!("waiting for {shown}: {e}"))?;
    // After a kill, what is still buffered in the pipes is part of the
    // story. The readers are not joined then: a grandchild could keep a pipe
    // open, and they end by themselves when it closes.
    for (pipe, line) in rx.try_iter() {
        on_line(pipe, line);
    }
    if !killed {
        for r in readers {
            let _ = r.join();
        }
    }
    Ok(if killed {
        Ended::Killed
    } else {
        Ended::Exited(status)
    })
}

/// Writes `text` to the child's input, if it has a pipe there.
fn write_input(stdin: &mut Option<std::process::ChildStdin>, text: &[u8]) {
    if let Some(pipe) = stdin.as_mut() {
        // A child that has gone makes this fail (EPIPE): its exit status
        // tells the story.
        let _ = pipe.write_all(text).and_then(|()| pipe.flush());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Command {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", script]);
        cmd
    }

    #[test]
    fn lines_from_both_pipes_arrive_cleaned_and_the_status_comes_back() {
        let mut seen = Vec::new();
        let ended = run_bounded(
            &mut sh("printf 'a\\r\\nb\\n'; printf 'e\\n' >&2; printf '\\377x\\n'; exit 3"),
            Duration::from_secs(30),
            |pipe, line| seen.push((pipe, line)),
        )
        .unwrap();
        assert!(matches!(ended, Ended::Exited(s) if s.code() == Some(3)));
        let out: Vec<&str> = seen
            .iter()
            .filter(|(p, _)| *p == Pipe::Stdout)
            .map(|(_, l)| l.as_str())
            .collect();
        assert_eq!(out, ["a", "b", "\u{FFFD}x"]);
        assert!(seen.contains(&(Pipe::Stderr, "e".to_string())));
    }

    #[test]
    fn input_is_fed_once_the_awaited_line_came_and_stays_open_until_the_end() {
        let mut seen = Vec::new();
        // The text must come after "ready", and the pipe must still be
        // open afterwards: `cat` then blocks until `timeout` ends it (124),
        // where at end of input it would exit with 0.
        let script = "echo ready; read line; echo \"got $line\"; \
                      timeout 1 cat; echo \"cat $?\"";
        let ended = run_bounded_fed(
            &mut sh(script),
            Duration::from_secs(30),
            Some(Feed {
                text: b"hello there\n",
                after: Some("ready"),
            }),
            |_, line| seen.push(line),
        )
        .unwrap();
        assert!(matches!(ended, Ended::Exited(s) if s.success()));
        assert_eq!(seen, ["ready", "got hello there", "cat 124"]);

        let mut seen = Vec::new();
        run_bounded_fed(
            &mut sh("read line; echo \"got $line\""),
            Duration::from_secs(30),
            Some(Feed {
                text: b"at once\n",
                after: None,
            }),
            |_, line| seen.push(line),
        )
        .unwrap();
        assert_eq!(seen, ["got at once"]);
    }

    #[test]
    fn without_a_feed_the_input_is_empty() {
        let mut seen = Vec::new();
        run_bounded(
            &mut sh("if read line; then echo got; else echo eof; fi"),
            Duration::from_secs(30),
            |_, line| seen.push(line),
        )
        .unwrap();
        assert_eq!(seen, ["eof"]);
    }

    #[test]
    fn a_process_past_its_deadline_is_killed() {
        let started = Instant::now();
        let mut seen = Vec::new();
        let ended = run_bounded(
            &mut sh("echo started; exec sleep 30"),
            Duration::from_millis(300),
            |_, line| seen.push(line),
        )
        .unwrap();
        assert!(matches!(ended, Ended::Killed));
        assert!(started.elapsed() < Duration::from_secs(10));
        assert_eq!(seen, ["started"]);
    }
}
