//! Merges many cursors into one with a binary heap of child indices:
//! a min-heap when moving forward, a max-heap when moving backward.

use std::cmp::Ordering;

use bytes::Bytes;

use super::InternalIterator;
use crate::error::{Error, Result};
use crate::key;

pub(crate) struct MergingIterator {
    children: Vec<Box<dyn InternalIterator>>,
    heap: Vec<usize>,
    forward: bool,
    err: Option<Error>,
}

impl MergingIterator {
    pub(crate) fn new(children: Vec<Box<dyn InternalIterator>>) -> Self {
        MergingIterator {
            heap: Vec::with_capacity(children.len()),
            children,
            forward: true,
            err: None,
        }
    }

    /// Child `a` comes out of the heap before child `b`.
    fn before(&self, a: usize, b: usize) -> bool {
        let (Some(ca), Some(cb)) = (self.children.get(a), self.children.get(b)) else {
            return false;
        };
        let ord = key::compare(ca.key(), cb.key()).then(a.cmp(&b));
        if self.forward {
            ord == Ordering::Less
        } else {
            ord == Ordering::Greater
        }
    }

    fn sift_down(&mut self, mut i: usize) {
        let n = self.heap.len();
        loop {
            let (l, r) = (2 * i + 1, 2 * i + 2);
            let mut best = i;
            for c in [l, r] {
                if c < n && self.before(self.heap[c], self.heap[best]) {
                    best = c;
                }
            }
            if best == i {
                return;
            }
            self.heap.swap(i, best);
            i = best;
        }
    }

    /// Rebuilds the heap from every valid child, noting the first error.
    fn rebuild(&mut self, forward: bool) {
        self.forward = forward;
        self.heap.clear();
        for (i, c) in self.children.iter().enumerate() {
            if c.valid() {
                self.heap.push(i);
            } else if let Err(e) = c.status() {
                self.err.get_or_insert(e);
            }
        }
        for i in (0..self.heap.len() / 2).rev() {
            self.sift_down(i);
        }
    }

    fn step(&mut self) {
        let Some(&top) = self.heap.first() else {
            return;
        };
        let Some(child) = self.children.get_mut(top) else {
            return;
        };
        if self.forward {
            child.next();
        } else {
            child.prev();
        }
        if !child.valid() {
            if let Err(e) = child.status() {
                self.err.get_or_insert(e);
            }
            let last = self.heap.len() - 1;
            self.heap.swap(0, last);
            self.heap.pop();
        }
        self.sift_down(0);
    }

    fn top(&self) -> Option<&dyn InternalIterator> {
        let i = *self.heap.first()?;
        self.children.get(i).map(|c| c.as_ref())
    }
}

impl InternalIterator for MergingIterator {
    fn seek(&mut self, target: &[u8]) {
        self.err = None;
        for c in &mut self.children {
            c.seek(target);
        }
        self.rebuild(true);
    }

    fn seek_to_first(&mut self) {
        self.err = None;
        for c in &mut self.children {
            c.seek_to_first();
        }
        self.rebuild(true);
    }

    fn seek_for_prev(&mut self, target: &[u8]) {
        self.err = None;
        for c in &mut self.children {
            c.seek_for_prev(target);
        }
        self.rebuild(false);
    }

    fn seek_to_last(&mut self) {
        self.err = None;
        for c in &mut self.children {
            c.seek_to_last();
        }
        self.rebuild(false);
    }

    fn next(&mut self) {
        self.step();
    }

    fn prev(&mut self) {
        self.step();
    }

    fn valid(&self) -> bool {
        self.err.is_none() && !self.heap.is_empty()
    }

    fn key(&self) -> &[u8] {
        self.top().map_or(&[], |c| c.key())
    }

    fn value(&self) -> Bytes {
        self.top().map_or_else(Bytes::new, |c| c.value())
    }

    fn status(&self) -> Result<()> {
        match &self.err {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }
}
