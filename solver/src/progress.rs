//! Progress events: the solver reports what it does to a [`ProgressSink`]
//! and never prints.

use std::sync::mpsc::Sender;
use std::time::Duration;

use crate::graph::VertexId;

/// Which output stream a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// One thing that happened during a build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProgressEvent {
    /// A vertex started running.
    VertexStarted {
        /// The vertex.
        vertex: VertexId,
        /// Its display name.
        name: String,
    },
    /// A vertex's result was found in the cache; it will not run.
    VertexCached {
        /// The vertex.
        vertex: VertexId,
        /// Its display name.
        name: String,
    },
    /// A line (without its newline) written by a running vertex.
    Log {
        /// The vertex.
        vertex: VertexId,
        /// The stream it was written to.
        stream: Stream,
        /// The bytes, not necessarily UTF-8.
        line: Vec<u8>,
    },
    /// A vertex finished successfully.
    VertexDone {
        /// The vertex.
        vertex: VertexId,
        /// How long it ran.
        elapsed: Duration,
    },
    /// A line about the build that belongs to no vertex (pulling a base image).
    Message(String),
    /// `--build-arg` names no ARG declared (docker warns about them).
    UnusedBuildArgs(Vec<String>),
    /// A build check found something in the Dockerfile worth a warning.
    Warning(BuildWarning),
    /// A vertex failed; the build stops.
    VertexFailed {
        /// The vertex.
        vertex: VertexId,
        /// The error, rendered as one sentence.
        error: String,
        /// How long it ran.
        elapsed: Duration,
    },
}

/// A build check's finding, as BuildKit's checks report them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildWarning {
    /// The check (`SecretsUsedInArgOrEnv`).
    pub rule: String,
    /// What it found and what to do instead, one sentence.
    pub message: String,
    /// The Dockerfile, as named in messages.
    pub file: String,
    /// The line of the instruction (1-based).
    pub line: u32,
}

/// Where a build's events go.
pub trait ProgressSink {
    /// Takes one event; never fails the build.
    fn send(&self, event: ProgressEvent);
}

/// A sink that sends events on a channel. Cloneable; a closed receiver just
/// means nobody is watching.
#[derive(Debug, Clone, Default)]
pub struct ChannelSink {
    tx: Option<Sender<ProgressEvent>>,
}

impl ProgressSink for ChannelSink {
    fn send(&self, event: ProgressEvent) {
        if let Some(tx) = &self.tx {
            // A dropped receiver is not an error for the build.
            let _ = tx.send(event);
        }
    }
}

impl ChannelSink {
    /// Events go to `tx`.
    pub fn new(tx: Sender<ProgressEvent>) -> Self {
        Self { tx: Some(tx) }
    }

    /// Events are dropped.
    pub fn discard() -> Self {
        Self { tx: None }
    }
}

/// A vertex's view of the sink: logs lines attributed to it.
#[derive(Debug, Clone)]
pub struct VertexLog {
    sink: ChannelSink,
    vertex: VertexId,
}

impl VertexLog {
    /// Attributes lines to `vertex`.
    pub fn new(sink: ChannelSink, vertex: VertexId) -> Self {
        Self { sink, vertex }
    }

    /// Reports one line of output.
    pub fn line(&self, stream: Stream, line: &[u8]) {
        self.sink.send(ProgressEvent::Log {
            vertex: self.vertex,
            stream,
            line: line.to_vec(),
        });
    }
}
