//! Host calls without panics. The SDK's property and metric calls abort the VM on any status
//! they do not expect (a property the host cannot serialise, a read-only one, a context without
//! stream info, a metric name the host refuses), and an abort takes every request on the worker
//! with it. These wrappers call the same proxy-wasm ABI functions and turn every non-OK status
//! into `None` / `false` / nothing.

/// Status code of a successful host call.
#[cfg(target_arch = "wasm32")]
const OK: u32 = 0;

#[cfg(target_arch = "wasm32")]
#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_get_property(
        path_data: *const u8,
        path_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
    ) -> u32;
    fn proxy_set_property(
        path_data: *const u8,
        path_size: usize,
        value_data: *const u8,
        value_size: usize,
    ) -> u32;
    fn proxy_define_metric(
        metric_type: u32,
        name_data: *const u8,
        name_size: usize,
        return_id: *mut u32,
    ) -> u32;
    fn proxy_increment_metric(metric_id: u32, offset: i64) -> u32;
    fn proxy_record_metric(metric_id: u32, value: u64) -> u32;
}

/// Metric kinds of the proxy-wasm ABI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetricKind {
    Counter = 0,
    Gauge = 1,
    Histogram = 2,
}

/// Bytes of linear memory this VM holds (it grows, and never shrinks).
#[cfg(target_arch = "wasm32")]
pub fn vm_memory_bytes() -> u64 {
    (core::arch::wasm32::memory_size(0) as u64).saturating_mul(65536)
}

/// Native builds have no VM memory to report.
#[cfg(not(target_arch = "wasm32"))]
pub fn vm_memory_bytes() -> u64 {
    0
}

/// Defines a metric; `None` when the host refuses it.
#[cfg(target_arch = "wasm32")]
pub fn define_metric(kind: MetricKind, name: &str) -> Option<u32> {
    let mut id = 0u32;
    // SAFETY: `name` outlives the call; the host writes one u32 through `id`.
    let status = unsafe { proxy_define_metric(kind as u32, name.as_ptr(), name.len(), &mut id) };
    (status == OK).then_some(id)
}

/// Adds to a counter; failures are ignored (a metric is never worth a request).
#[cfg(target_arch = "wasm32")]
pub fn increment_metric(id: u32, by: u64) {
    // SAFETY: plain values.
    let _ = unsafe { proxy_increment_metric(id, i64::try_from(by).unwrap_or(i64::MAX)) };
}

/// Records a histogram value; failures are ignored.
#[cfg(target_arch = "wasm32")]
pub fn record_metric(id: u32, value: u64) {
    // SAFETY: plain values.
    let _ = unsafe { proxy_record_metric(id, value) };
}

/// The ABI's property path: parts joined by NUL.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
fn serialize_path(path: &[&str]) -> Vec<u8> {
    let mut out = Vec::with_capacity(path.iter().map(|p| p.len() + 1).sum());
    for (i, part) in path.iter().enumerate() {
        if i > 0 {
            out.push(0);
        }
        out.extend_from_slice(part.as_bytes());
    }
    out
}

/// A host property, or `None` when it is missing or the host refuses it.
#[cfg(target_arch = "wasm32")]
pub fn get_property(path: &[&str]) -> Option<Vec<u8>> {
    let path = serialize_path(path);
    let mut data: *mut u8 = std::ptr::null_mut();
    let mut size: usize = 0;
    // SAFETY: the host writes a buffer it allocated through this module's
    // `proxy_on_memory_allocate` (a boxed slice of exactly `size` bytes), which we take ownership of.
    unsafe {
        let status = proxy_get_property(path.as_ptr(), path.len(), &mut data, &mut size);
        if status != OK || data.is_null() {
            return None;
        }
        Some(Vec::from_raw_parts(data, size, size))
    }
}

/// Sets a property (Envoy keeps it in filter state as `wasm.<path>`); false when refused.
#[cfg(target_arch = "wasm32")]
pub fn set_property(path: &[&str], value: &[u8]) -> bool {
    let path = serialize_path(path);
    // SAFETY: both buffers outlive the call; the host copies them.
    unsafe { proxy_set_property(path.as_ptr(), path.len(), value.as_ptr(), value.len()) == OK }
}

/// Native builds (clippy, docs) have no host.
#[cfg(not(target_arch = "wasm32"))]
pub fn define_metric(_kind: MetricKind, _name: &str) -> Option<u32> {
    None
}

/// Native builds (clippy, docs) have no host.
#[cfg(not(target_arch = "wasm32"))]
pub fn increment_metric(_id: u32, _by: u64) {}

/// Native builds (clippy, docs) have no host.
#[cfg(not(target_arch = "wasm32"))]
pub fn record_metric(_id: u32, _value: u64) {}

/// Native builds (clippy, docs) have no host.
#[cfg(not(target_arch = "wasm32"))]
pub fn get_property(_path: &[&str]) -> Option<Vec<u8>> {
    None
}

/// Native builds (clippy, docs) have no host.
#[cfg(not(target_arch = "wasm32"))]
pub fn set_property(_path: &[&str], _value: &[u8]) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_joined_with_nul() {
        assert_eq!(serialize_path(&["tollgate.summary"]), b"tollgate.summary");
        assert_eq!(serialize_path(&["request", "time"]), b"request\0time");
        assert_eq!(serialize_path(&[]), b"");
    }
}
