//! Sale windows: an event, or a ticket type inside it, may open and close
//! its sale at given times. One rule, applied by the api when a request
//! arrives (on its own clock) and by the worker when it decides (on the
//! database's clock).

use chrono::{DateTime, Utc};

/// When a sale opens and closes (either may be open-ended).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SaleWindow {
    pub opens_at: Option<DateTime<Utc>>,
    pub closes_at: Option<DateTime<Utc>>,
}

/// Why a sale window refuses a reservation at some instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffSale {
    /// It opens at this time.
    NotYet(DateTime<Utc>),
    /// It closed at this time.
    Closed(DateTime<Utc>),
}

impl SaleWindow {
    /// Open from `opens_at` (included) until `closes_at` (excluded).
    pub fn check(&self, now: DateTime<Utc>) -> Result<(), OffSale> {
        match (self.opens_at, self.closes_at) {
            (Some(opens), _) if now < opens => Err(OffSale::NotYet(opens)),
            (_, Some(closes)) if now >= closes => Err(OffSale::Closed(closes)),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_opens_at_its_opening_and_closes_at_its_closing() {
        let t = |s: &str| s.parse::<DateTime<Utc>>().expect("a time");
        let window = SaleWindow {
            opens_at: Some(t("2026-12-02T10:00:00Z")),
            closes_at: Some(t("2026-12-02T12:00:00Z")),
        };
        assert_eq!(
            window.check(t("2026-12-02T09:59:59Z")),
            Err(OffSale::NotYet(t("2026-12-02T10:00:00Z")))
        );
        assert_eq!(window.check(t("2026-12-02T10:00:00Z")), Ok(()));
        assert_eq!(window.check(t("2026-12-02T11:59:59Z")), Ok(()));
        assert_eq!(
            window.check(t("2026-12-02T12:00:00Z")),
            Err(OffSale::Closed(t("2026-12-02T12:00:00Z")))
        );
        assert_eq!(
            SaleWindow::default().check(t("1970-01-01T00:00:00Z")),
            Ok(())
        );
    }
}
