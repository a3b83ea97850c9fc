//! Logical units reached through several target ports, and which port each session uses.
//!
//! A miniport may put the same logical unit on several buses (vstor's `TargetPorts`): the
//! scan then finds it once per bus, with the same Device Identification page (VPD 83h). As
//! multipath software does, the target groups the scanned LUNs by that page into logical units
//! with one path per bus; iSCSI LUN *n* is the *n*-th logical unit in scan order.
//!
//! With more than one port, each session gets a port (bus) of its own while one is free, so
//! the miniport sees each `I_T` nexus on its own path and can keep their reservations and unit
//! attentions apart; when sessions outnumber ports, the least used port is shared. When the
//! last session on a port ends (logout or a dropped connection: `I_T` nexus loss), the target
//! resets that port's bus (`HwResetBus`), which is how a Storport miniport learns of it: the
//! reset releases what the nexus held. With one port there is one nexus for everyone, and
//! nothing is reset when a session ends.

use std::sync::{Mutex, OnceLock, PoisonError};

use crate::port::DataDirection;
use crate::serve::backend::Backend;

/// INQUIRY, EVPD = 1, page 83h, allocation length 255.
const DEVICE_IDENTIFICATION: [u8; 6] = [0x12, 0x01, 0x83, 0x00, 0xFF, 0x00];

/// A scanned LUN: its miniport address and its VPD 83h page (`None` when unreadable).
pub type Scanned = ((u8, u8, u8), Option<Vec<u8>>);

/// One logical unit and its path on each port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unit {
    /// Its miniport address on each bus of [`Layout::buses`] that has it.
    paths: Vec<Option<(u8, u8, u8)>>,
}

/// The logical units of the adapter and the buses (ports) they are reached through.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Layout {
    /// Bus numbers, ascending: port *k* is bus `buses[k]`.
    pub buses: Vec<u8>,
    /// Logical units in scan order.
    pub units: Vec<Unit>,
}

impl Layout {
    /// Groups `scanned` (miniport addresses with their VPD 83h page, `None` when the page
    /// could not be read) into logical units; LUNs without a page stay on their own.
    #[must_use]
    pub fn group(scanned: &[Scanned]) -> Self {
        let mut buses: Vec<u8> = scanned.iter().map(|(address, _)| address.0).collect();
        buses.sort_unstable();
        buses.dedup();
        let mut units: Vec<Unit> = Vec::new();
        let mut keys: Vec<Option<&[u8]>> = Vec::new();
        for (address, page) in scanned {
            let port = buses.iter().position(|&bus| bus == address.0).unwrap_or(0);
            let key = page.as_deref();
            let existing = key.and_then(|key| {
                keys.iter()
                    .zip(&units)
                    .position(|(k, unit)| *k == Some(key) && unit.paths[port].is_none())
            });
            let index = existing.unwrap_or_else(|| {
                units.push(Unit {
                    paths: vec![None; buses.len()],
                });
                keys.push(key);
                units.len() - 1
            });
            units[index].paths[port] = Some(*address);
        }
        Self { buses, units }
    }

    /// The number of ports.
    #[must_use]
    pub fn ports(&self) -> usize {
        self.buses.len().max(1)
    }

    /// The address of logical unit `lun` through port `port` (or through its first path
    /// when it is not on that port).
    #[must_use]
    pub fn address(&self, lun: usize, port: usize) -> Option<(u8, u8, u8)> {
        let unit = self.units.get(lun)?;
        unit.paths
            .get(port)
            .copied()
            .flatten()
            .or_else(|| unit.paths.iter().flatten().next().copied())
    }
}

/// The ports of one target: its layout, found on first use, and the sessions on each port.
#[derive(Debug, Default)]
pub struct Ports {
    layout: OnceLock<Layout>,
    sessions: Mutex<Vec<u32>>,
}

impl Ports {
    /// The layout of `backend`'s logical units, scanned once.
    pub fn layout(&self, backend: &Backend) -> &Layout {
        self.layout.get_or_init(|| {
            let scanned: Vec<_> = backend
                .luns()
                .iter()
                .map(|lun| {
                    let page = backend
                        .port()
                        .execute(lun.address, &DEVICE_IDENTIFICATION, &DataDirection::In(255))
                        .ok()
                        .filter(|result| result.status() == storport_sys::srb_status::SUCCESS)
                        .map(|result| result.data);
                    (lun.address, page)
                })
                .collect();
            Layout::group(&scanned)
        })
    }

    /// Takes a port for a new session: a free one, else the least used.
    pub fn acquire(&self, backend: &Backend) -> usize {
        let ports = self.layout(backend).ports();
        let mut sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        sessions.resize(ports, 0);
        let port = (0..ports).min_by_key(|&k| (sessions[k], k)).unwrap_or(0);
        sessions[port] += 1;
        port
    }

    /// Gives `port` back; when it was its last session and the target has several ports,
    /// resets its bus.
    pub fn release(&self, backend: &Backend, port: usize) {
        let layout = self.layout(backend);
        let last = {
            let mut sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
            match sessions.get_mut(port) {
                Some(count) if *count > 0 => {
                    *count -= 1;
                    *count == 0
                }
                _ => false,
            }
        };
        if last
            && layout.ports() > 1
            && let Some(&bus) = layout.buses.get(port)
        {
            let reset = backend.port().reset_bus(bus);
            backend.port().log(format!(
                "iSCSI: the last session on port {port} ended: HwResetBus({bus}) -> {reset:?}"
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Layout;

    #[test]
    fn the_same_page_on_two_buses_is_one_unit_with_two_paths() {
        let a = Some(vec![0, 0x83, 0, 4, 1, 2, 3, 4]);
        let b = Some(vec![0, 0x83, 0, 4, 5, 6, 7, 8]);
        let layout = Layout::group(&[
            ((0, 0, 0), a.clone()),
            ((0, 0, 1), b.clone()),
            ((1, 0, 0), a),
            ((1, 0, 1), b),
        ]);
        assert_eq!(layout.buses, vec![0, 1]);
        assert_eq!(layout.units.len(), 2);
        assert_eq!(layout.address(0, 0), Some((0, 0, 0)));
        assert_eq!(layout.address(0, 1), Some((1, 0, 0)));
        assert_eq!(layout.address(1, 1), Some((1, 0, 1)));
        assert_eq!(layout.address(2, 0), None);
    }

    #[test]
    fn units_without_a_page_or_on_one_bus_stay_apart() {
        let layout = Layout::group(&[
            ((0, 0, 0), None),
            ((0, 0, 1), None),
            ((2, 0, 0), Some(vec![1])),
        ]);
        assert_eq!(layout.ports(), 2);
        assert_eq!(layout.units.len(), 3);
        // A unit not on the asked port is reached through its own path.
        assert_eq!(layout.address(0, 1), Some((0, 0, 0)));
        assert_eq!(layout.address(2, 0), Some((2, 0, 0)));
    }

    #[test]
    fn two_units_with_the_same_page_on_one_bus_stay_two() {
        let page = Some(vec![9, 9]);
        let layout = Layout::group(&[((0, 0, 0), page.clone()), ((0, 0, 1), page)]);
        assert_eq!(layout.units.len(), 2);
    }
}
