//! The colours services are told apart by, shared by the plain printer and the dashboard.

/// Stable per-service colours: ANSI 256-colour indexes that read on dark and light themes.
pub(super) const SERVICE_PALETTE: [u8; 10] = [33, 172, 35, 170, 38, 166, 70, 134, 31, 178];

/// The 256-colour index of the service at `index` in the plan.
pub(crate) fn service_colour(index: usize) -> u8 {
    SERVICE_PALETTE[index % SERVICE_PALETTE.len()]
}
