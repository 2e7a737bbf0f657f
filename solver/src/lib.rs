//! strata-solver: turns a parsed Dockerfile into a build graph and runs it.
//!
//! It will own `lower` (AST + build args + target → `BuildGraph`, with Docker's
//! ARG/ENV scoping, `--from` resolution, stage pruning and image-config folding),
//! `graph` (vertices, ops, cache keys), `schedule` (parallel execution of the graph
//! with the sandbox, the cache and file operations) and the progress event stream.
//! Only `lower` knows Dockerfiles; the rest sees the graph alone.
