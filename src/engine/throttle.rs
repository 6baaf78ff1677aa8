//! Throttling as plain state machines, no I/O: token buckets for rates per hour, and the
//! periodic sleep ("send N, then rest M seconds"). The run loop asks them how long to wait.

use std::time::{Duration, Instant};

/// A token bucket refilled at `rate_per_hour`; 0 means unlimited.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    per_sec: f64,
    capacity: f64,
    tokens: f64,
    refilled_at: Instant,
}

impl TokenBucket {
    pub fn per_hour(rate_per_hour: u32, now: Instant) -> TokenBucket {
        let per_sec = f64::from(rate_per_hour) / 3_600.0;
        // A burst of at most one second's worth keeps the pace even from the first message.
        let capacity = per_sec.max(1.0);
        TokenBucket {
            per_sec,
            capacity,
            tokens: 1.0,
            refilled_at: now,
        }
    }

    pub fn is_unlimited(&self) -> bool {
        self.per_sec <= 0.0
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now
            .saturating_duration_since(self.refilled_at)
            .as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.per_sec).min(self.capacity);
        self.refilled_at = now;
    }

    /// How long until a token is available (zero when one is).
    pub fn wait_time(&mut self, now: Instant) -> Duration {
        if self.is_unlimited() {
            return Duration::ZERO;
        }
        self.refill(now);
        if self.tokens >= 1.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((1.0 - self.tokens) / self.per_sec)
        }
    }

    /// Takes a token; call after `wait_time` returned zero.
    pub fn take(&mut self, now: Instant) {
        if self.is_unlimited() {
            return;
        }
        self.refill(now);
        self.tokens -= 1.0;
    }
}

/// After every `every` messages, all sending rests `rest`.
#[derive(Debug, Clone)]
pub struct PeriodicSleep {
    every: u32,
    rest: Duration,
    since_rest: u32,
    resting_until: Option<Instant>,
}

impl PeriodicSleep {
    pub fn new(every: u32, rest_secs: u32) -> PeriodicSleep {
        PeriodicSleep {
            every,
            rest: Duration::from_secs(u64::from(rest_secs)),
            since_rest: 0,
            resting_until: None,
        }
    }

    /// When resting, the instant the rest ends.
    pub fn resting_until(&mut self, now: Instant) -> Option<Instant> {
        match self.resting_until {
            Some(until) if until > now => Some(until),
            _ => {
                self.resting_until = None;
                None
            }
        }
    }

    /// Counts a message; starts a rest when the count is reached.
    pub fn count(&mut self, now: Instant) {
        if self.every == 0 || self.rest.is_zero() {
            return;
        }
        self.since_rest += 1;
        if self.since_rest >= self.every {
            self.since_rest = 0;
            self.resting_until = Some(now + self.rest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_paces_to_its_rate() {
        let start = Instant::now();
        let mut bucket = TokenBucket::per_hour(3_600, start);
        assert_eq!(bucket.wait_time(start), Duration::ZERO);
        bucket.take(start);
        let wait = bucket.wait_time(start);
        assert!(
            wait > Duration::from_millis(900) && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
        let later = start + Duration::from_secs(1);
        assert_eq!(bucket.wait_time(later), Duration::ZERO);
        // 36,000/h = 10/s: ten messages in the first second at most (plus the initial one).
        let mut fast = TokenBucket::per_hour(36_000, start);
        let mut sent = 0;
        let mut now = start;
        while now < start + Duration::from_secs(1) {
            if fast.wait_time(now).is_zero() {
                fast.take(now);
                sent += 1;
            }
            now += Duration::from_millis(10);
        }
        assert!((9..=11).contains(&sent), "{sent}");
        assert!(TokenBucket::per_hour(0, start).wait_time(start).is_zero());
    }

    #[test]
    fn periodic_sleep_rests_after_n() {
        let start = Instant::now();
        let mut sleep = PeriodicSleep::new(3, 10);
        for _ in 0..2 {
            sleep.count(start);
        }
        assert_eq!(sleep.resting_until(start), None);
        sleep.count(start);
        assert_eq!(
            sleep.resting_until(start),
            Some(start + Duration::from_secs(10))
        );
        assert_eq!(sleep.resting_until(start + Duration::from_secs(11)), None);
        let mut off = PeriodicSleep::new(0, 10);
        off.count(start);
        assert_eq!(off.resting_until(start), None);
    }
}
