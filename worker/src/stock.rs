//! The tickets a decision can give out, apart from the rules that decide
//! who gets them (`rules`): the event's own count, and for an event that
//! sells ticket types, each type's and each quota's. A reservation of a
//! type takes from the type, from the type's quota and from the event at
//! once, all or nothing, and gives back to all three. Pure, like `rules`.

use std::collections::BTreeMap;

/// What a rejected reserve is told when one of its counts is short.
pub const NOT_ENOUGH: &str = "Not enough tickets";

/// One ticket type's count, and where else its tickets are counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TypeStock {
    pub available: i32,
    pub quota: Option<i64>,
    /// A closed type sells nothing more (its tickets given back still
    /// count back into it).
    pub closed: bool,
    /// Why the type's own sale window refuses new sales now, if it does.
    pub off_sale: Option<&'static str>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stock {
    /// The event's own count, which caps everything.
    pub event: i32,
    /// Set when the event sells types: a reserve must then name one.
    pub typed: bool,
    pub types: BTreeMap<i64, TypeStock>,
    pub quotas: BTreeMap<i64, i32>,
    /// Why the event sells nothing now (its sale window, on the
    /// database's clock), if it does not: the api refuses such requests
    /// first, from terms it may have read a few seconds earlier.
    pub off_sale: Option<&'static str>,
}

/// An event without types: only its own count.
impl From<i32> for Stock {
    fn from(event: i32) -> Self {
        Self {
            event,
            ..Self::default()
        }
    }
}

impl Stock {
    /// Why `quantity` tickets of `ticket_type` cannot be taken now, if
    /// they cannot.
    pub fn shortfall(&self, ticket_type: Option<i64>, quantity: i32) -> Option<&'static str> {
        if self.off_sale.is_some() {
            return self.off_sale;
        }
        if quantity <= 0 || quantity > self.event {
            return Some(NOT_ENOUGH);
        }
        let Some(id) = ticket_type else {
            return self
                .typed
                .then_some("Choose a ticket type: this event sells several");
        };
        let Some(kind) = self.types.get(&id) else {
            return Some("Unknown ticket type");
        };
        let quota_short = kind
            .quota
            .is_some_and(|q| self.quotas.get(&q).copied().unwrap_or(0) < quantity);
        if kind.closed {
            Some("Ticket type closed")
        } else if kind.off_sale.is_some() {
            kind.off_sale
        } else if kind.available < quantity || quota_short {
            Some(NOT_ENOUGH)
        } else {
            None
        }
    }

    /// Takes `quantity` tickets of `ticket_type` (checked first with
    /// [`Stock::shortfall`]).
    pub fn take(&mut self, ticket_type: Option<i64>, quantity: i32) {
        self.shift(ticket_type, -quantity);
    }

    /// Gives back what [`Stock::take`] took.
    pub fn give_back(&mut self, ticket_type: Option<i64>, quantity: i32) {
        self.shift(ticket_type, quantity);
    }

    fn shift(&mut self, ticket_type: Option<i64>, delta: i32) {
        self.event += delta;
        let Some(kind) = ticket_type.and_then(|id| self.types.get_mut(&id)) else {
            return;
        };
        kind.available += delta;
        if let Some(quota) = kind.quota.and_then(|q| self.quotas.get_mut(&q)) {
            *quota += delta;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Types 1 and 2 share quota 9 (5 left); type 3 stands alone.
    fn stock() -> Stock {
        let kind = |available, quota| TypeStock {
            available,
            quota,
            closed: false,
            off_sale: None,
        };
        Stock {
            event: 20,
            typed: true,
            types: BTreeMap::from([
                (1, kind(4, Some(9))),
                (2, kind(4, Some(9))),
                (3, kind(8, None)),
            ]),
            quotas: BTreeMap::from([(9, 5)]),
            off_sale: None,
        }
    }

    #[test]
    fn a_type_takes_from_itself_its_quota_and_the_event() {
        let mut stock = stock();
        stock.take(Some(1), 3);
        assert_eq!(
            (stock.event, stock.types[&1].available, stock.quotas[&9]),
            (17, 1, 2)
        );
        // Type 2 has 4 left but its quota only 2.
        assert_eq!(stock.shortfall(Some(2), 3), Some(NOT_ENOUGH));
        assert_eq!(stock.shortfall(Some(2), 2), None);
        stock.give_back(Some(1), 3);
        assert_eq!(stock, self::stock());
    }

    #[test]
    fn a_typed_event_needs_a_known_open_type_and_the_event_caps_all() {
        let mut stock = stock();
        assert!(stock.shortfall(None, 1).is_some());
        assert_eq!(stock.shortfall(Some(7), 1), Some("Unknown ticket type"));
        if let Some(kind) = stock.types.get_mut(&3) {
            kind.closed = true;
        }
        assert_eq!(stock.shortfall(Some(3), 1), Some("Ticket type closed"));
        if let Some(kind) = stock.types.get_mut(&2) {
            kind.off_sale = Some("Sale not open yet");
        }
        assert_eq!(stock.shortfall(Some(2), 1), Some("Sale not open yet"));
        assert_eq!(stock.shortfall(Some(1), 1), None);
        stock.event = 1;
        assert_eq!(stock.shortfall(Some(1), 2), Some(NOT_ENOUGH));
        assert_eq!(Stock::from(3).shortfall(None, 3), None);
        let closed = Stock {
            off_sale: Some("Sale closed"),
            ..Stock::from(3)
        };
        assert_eq!(closed.shortfall(None, 1), Some("Sale closed"));
    }
}
