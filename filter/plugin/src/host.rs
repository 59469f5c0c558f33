//! Host properties without panics. The SDK's `get_property` / `set_property` abort the VM on any
//! status they do not expect (a property the host cannot serialise, a read-only one, a context
//! without stream info), and an abort takes every request on the worker with it. These wrappers
//! call the same proxy-wasm ABI functions and turn every non-OK status into `None` / `false`.

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
