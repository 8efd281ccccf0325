//! Completion-based async I/O for the CPU side (io_uring backend, epoll fallback).
