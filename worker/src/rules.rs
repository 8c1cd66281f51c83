//! The rules of a decision, apart from the SQL that loads and stores it
//! (`store`): given an event's availability, the reservations a batch names
//! and the batch's commands in arrival order, what each command gets and
//! what must be written. No I/O, so the rules can be tested on their own,
//! by example and by property (no oversell, first come first served, all or
//! nothing per command, the same answer on replay).

use std::collections::{BTreeMap, HashMap};

use shared::messages::{Command, Outcome, ReservationStatus};
use uuid::Uuid;

/// A reservation as the rules see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Booking {
    pub id: Uuid,
    pub event_id: i64,
    pub client_id: i64,
    pub user_id: Option<i64>,
    pub quantity: i32,
    pub status: ReservationStatus,
}

/// How a booking the batch changed reaches the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write {
    /// A new row, stored whole in its final state.
    Insert,
    /// An existing row, changed only if it is still in state `from`.
    Update { from: ReservationStatus },
}

#[derive(Debug)]
pub struct Decision {
    /// One outcome per command, in command order, each as of its command.
    pub outcomes: Vec<Outcome>,
    /// Tickets left after the batch.
    pub available: i32,
    /// Every booking the batch named, in its final state.
    pub bookings: HashMap<Uuid, Booking>,
    /// The bookings to write, by id: sorted, so concurrent writers (after a
    /// lease expiry) lock rows in one order and cannot deadlock.
    pub writes: BTreeMap<Uuid, Write>,
}

/// Decides `commands` (all for `event_id`, in arrival order) against
/// `available` tickets and the `bookings` they name that already exist.
///
/// - A reserve is all or nothing: confirmed if its whole quantity is left
///   when its turn comes, else rejected; later commands see what it took.
/// - A reservation is decided once: a decided booking is returned as it is.
/// - A booking of another request that reused the id (other event,
///   quantity, user or client) is never touched; its outcome names what it
///   holds, which tells the api so.
/// - A cancel returns a confirmed booking's tickets, for its own client
///   only; anything else is reported as it is.
pub fn decide(
    event_id: i64,
    available: i32,
    mut bookings: HashMap<Uuid, Booking>,
    commands: &[Command],
) -> Decision {
    let mut available = available;
    let mut writes = BTreeMap::new();
    let mut outcomes = Vec::with_capacity(commands.len());
    for command in commands {
        let outcome = match *command {
            Command::Reserve {
                reservation_id,
                quantity,
                user_id,
                client_id,
                ..
            } => {
                let fresh = !bookings.contains_key(&reservation_id);
                let booking = bookings.entry(reservation_id).or_insert(Booking {
                    id: reservation_id,
                    event_id,
                    client_id,
                    user_id,
                    quantity,
                    status: ReservationStatus::Pending,
                });
                let same_request = booking.event_id == event_id
                    && booking.quantity == quantity
                    && booking.user_id == user_id
                    && booking.client_id == client_id;
                if !booking.status.is_decided() && same_request {
                    let fits = booking.quantity > 0 && booking.quantity <= available;
                    if fits {
                        available -= booking.quantity;
                    }
                    let from = booking.status;
                    booking.status = if fits {
                        ReservationStatus::Confirmed
                    } else {
                        ReservationStatus::Rejected
                    };
                    writes.insert(
                        reservation_id,
                        if fresh {
                            Write::Insert
                        } else {
                            Write::Update { from }
                        },
                    );
                }
                outcome(booking, available)
            }
            Command::Cancel {
                reservation_id,
                client_id,
                ..
            } => match bookings.get_mut(&reservation_id) {
                Some(booking) if booking.client_id != client_id || booking.event_id != event_id => {
                    unknown(command)
                }
                Some(booking) if booking.status == ReservationStatus::Confirmed => {
                    available += booking.quantity;
                    booking.status = ReservationStatus::Cancelled;
                    // A row inserted by this batch is inserted cancelled.
                    writes.entry(reservation_id).or_insert(Write::Update {
                        from: ReservationStatus::Confirmed,
                    });
                    outcome(booking, available)
                }
                Some(booking) => outcome(booking, available),
                None => unknown(command),
            },
        };
        outcomes.push(outcome);
    }
    Decision {
        outcomes,
        available,
        bookings,
        writes,
    }
}

/// The outcome of every command of a batch whose event does not exist.
pub fn unknown_event(commands: &[Command]) -> Vec<Outcome> {
    commands
        .iter()
        .map(|command| refusal(command, "Unknown event"))
        .collect()
}

fn outcome(booking: &Booking, remaining: i32) -> Outcome {
    Outcome {
        reservation_id: booking.id,
        event_id: booking.event_id,
        quantity: booking.quantity,
        user_id: booking.user_id,
        status: booking.status,
        remaining_tickets: remaining,
        message: booking.status.message().to_owned(),
        refused: None,
    }
}

fn unknown(command: &Command) -> Outcome {
    refusal(command, "Unknown reservation")
}

/// A rejection of `command` that stores nothing: it names nothing that
/// exists (`refused` unset), or the database refused it for good (set).
pub fn refusal(command: &Command, message: &str) -> Outcome {
    let (quantity, user_id) = match *command {
        Command::Reserve {
            quantity, user_id, ..
        } => (quantity, user_id),
        Command::Cancel { .. } => (0, None),
    };
    Outcome {
        reservation_id: command.reservation_id(),
        event_id: command.event_id(),
        quantity,
        user_id,
        status: ReservationStatus::Rejected,
        remaining_tickets: 0,
        message: message.to_owned(),
        refused: None,
    }
}

#[cfg(test)]
#[path = "rules_tests.rs"]
mod tests;
