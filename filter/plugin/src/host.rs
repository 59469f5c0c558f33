//! Host calls without panics. The SDK's calls abort the VM on any status they do not expect (a
//! property the host cannot serialise, a metric name the host refuses, a request header changed
//! after the headers have gone on — which is every header call from a body callback in the
//! default request hold), and an abort takes every request on the worker with it. These wrappers
//! call the same proxy-wasm ABI functions and turn every non-OK status into `None` / `false`.
//! [`Host`] is what an exchange needs of them, so the exchange shell runs natively in tests
//! against a host that behaves like Envoy.

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
    fn proxy_get_header_map_pairs(
        map_type: u32,
        return_map_data: *mut *mut u8,
        return_map_size: *mut usize,
    ) -> u32;
    fn proxy_replace_header_map_value(
        map_type: u32,
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
    ) -> u32;
    fn proxy_remove_header_map_value(map_type: u32, key_data: *const u8, key_size: usize) -> u32;
    fn proxy_get_buffer_bytes(
        buffer_type: u32,
        start: usize,
        max_size: usize,
        return_buffer_data: *mut *mut u8,
        return_buffer_size: *mut usize,
    ) -> u32;
    fn proxy_set_buffer_bytes(
        buffer_type: u32,
        start: usize,
        size: usize,
        buffer_data: *const u8,
        buffer_size: usize,
    ) -> u32;
    #[allow(clippy::too_many_arguments)]
    fn proxy_send_local_response(
        status_code: u32,
        status_code_details_data: *const u8,
        status_code_details_size: usize,
        body_data: *const u8,
        body_size: usize,
        headers_data: *const u8,
        headers_size: usize,
        grpc_status: i32,
    ) -> u32;
    fn proxy_get_shared_data(
        key_data: *const u8,
        key_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
        return_cas: *mut u32,
    ) -> u32;
    fn proxy_set_shared_data(
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
        cas: u32,
    ) -> u32;
    fn proxy_continue_stream(stream_type: u32) -> u32;
    fn proxy_close_stream(stream_type: u32) -> u32;
    fn proxy_set_effective_context(context_id: u32) -> u32;
    fn proxy_get_current_time_nanoseconds(return_time: *mut u64) -> u32;
}

/// Header maps of the ABI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Map {
    RequestHeaders = 0,
    ResponseHeaders = 2,
}

/// Body buffers of the ABI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    Request = 0,
    Response = 1,
    /// The answer to a gRPC call, in its response callback.
    GrpcReceive = 5,
}

/// What one exchange needs of the host. Every call reports failure instead of panicking.
pub trait Host: Clone + 'static {
    /// Host clock, unix nanoseconds (0 when refused).
    fn now(&self) -> u64;
    fn headers(&self, map: Map) -> Option<Vec<(String, String)>>;
    /// Sets (`Some`) or removes (`None`) a header; false when refused.
    fn set_header(&self, map: Map, name: &str, value: Option<&str>) -> bool;
    /// `len` bytes of the current body from `start`.
    fn body(&self, body: Body, start: usize, len: usize) -> Option<Vec<u8>>;
    /// Replaces `len` bytes from `start` of the current body; false when refused.
    fn set_body(&self, body: Body, start: usize, len: usize, bytes: &[u8]) -> bool;
    /// Answers the request locally; false when refused.
    fn send_local_reply(&self, status: u16, headers: &[(&str, &str)], body: &[u8]) -> bool;
    fn property(&self, path: &[&str]) -> Option<Vec<u8>>;
    fn set_property(&self, path: &[&str], value: &[u8]) -> bool;
    /// A value of the VM id's shared data (every worker of this Envoy sees it) and its version.
    fn shared_data(&self, key: &str) -> SharedRead;
    /// Writes shared data if it is still at `version` (`None`: whatever is there).
    fn set_shared_data(&self, key: &str, value: &[u8], version: Option<u32>) -> SharedWrite;
    /// Starts a gRPC call whose answer comes to the current context's
    /// `on_grpc_call_response`; its token, or `None` when the host refuses it.
    fn grpc_call(&self, call: &tollgate_engine::GrpcCall) -> Option<u32>;
    /// Lets the current request go on after a pause.
    fn resume_request(&self) -> bool;
}

/// Makes the SDK's gRPC dispatch usable outside a context type: the SDK routes the answer to
/// the context that is active when the call is made, whatever the receiver.
struct ActiveContext;

impl proxy_wasm::traits::Context for ActiveContext {}

/// A gRPC call through the SDK (which records the calling context for the answer).
pub fn dispatch_grpc(call: &tollgate_engine::GrpcCall) -> Option<u32> {
    use proxy_wasm::traits::Context;
    let auth = call.token.as_ref().map(|t| format!("Bearer {t}"));
    let metadata: Vec<(&str, &[u8])> = auth
        .as_deref()
        .map(|a| vec![("authorization", a.as_bytes())])
        .unwrap_or_default();
    ActiveContext
        .dispatch_grpc_call(
            &call.cluster,
            call.service,
            call.method,
            metadata,
            Some(&call.body),
            std::time::Duration::from_millis(call.timeout_ms),
        )
        .ok()
}

/// The answer to a shared-data read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SharedRead {
    /// The value and its version.
    Found(Vec<u8>, u32),
    Absent,
    Refused,
}

/// The answer to a shared-data write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SharedWrite {
    Done,
    /// Another worker wrote first (`CasMismatch`).
    Changed,
    Refused,
}

/// The proxy-wasm host this module runs in.
#[derive(Debug, Clone, Copy, Default)]
pub struct Wasm;

impl Host for Wasm {
    fn now(&self) -> u64 {
        now_nanos()
    }
    fn headers(&self, map: Map) -> Option<Vec<(String, String)>> {
        get_headers(map)
    }
    fn set_header(&self, map: Map, name: &str, value: Option<&str>) -> bool {
        set_header(map, name, value)
    }
    fn body(&self, body: Body, start: usize, len: usize) -> Option<Vec<u8>> {
        get_body(body, start, len)
    }
    fn set_body(&self, body: Body, start: usize, len: usize, bytes: &[u8]) -> bool {
        set_body(body, start, len, bytes)
    }
    fn send_local_reply(&self, status: u16, headers: &[(&str, &str)], body: &[u8]) -> bool {
        send_local_reply(status, headers, body)
    }
    fn property(&self, path: &[&str]) -> Option<Vec<u8>> {
        get_property(path)
    }
    fn set_property(&self, path: &[&str], value: &[u8]) -> bool {
        set_property(path, value)
    }
    fn shared_data(&self, key: &str) -> SharedRead {
        get_shared_data(key)
    }
    fn set_shared_data(&self, key: &str, value: &[u8], version: Option<u32>) -> SharedWrite {
        set_shared_data(key, value, version)
    }
    fn grpc_call(&self, call: &tollgate_engine::GrpcCall) -> Option<u32> {
        dispatch_grpc(call)
    }
    fn resume_request(&self) -> bool {
        continue_request()
    }
}

/// The ABI's header-map encoding: a count, then each pair's key and value lengths, then each
/// key and value followed by a NUL.
pub fn serialize_map(pairs: &[(&str, &str)]) -> Vec<u8> {
    let size: usize = 4 + pairs
        .iter()
        .map(|(k, v)| 10 + k.len() + v.len())
        .sum::<usize>();
    let mut out = Vec::with_capacity(size);
    let len32 = |n: usize| u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes();
    out.extend_from_slice(&len32(pairs.len()));
    for (k, v) in pairs {
        out.extend_from_slice(&len32(k.len()));
        out.extend_from_slice(&len32(v.len()));
    }
    for (k, v) in pairs {
        out.extend_from_slice(k.as_bytes());
        out.push(0);
        out.extend_from_slice(v.as_bytes());
        out.push(0);
    }
    out
}

/// Decodes [`serialize_map`]'s format; `None` when it is cut short or inconsistent.
pub fn deserialize_map(bytes: &[u8]) -> Option<Vec<(String, String)>> {
    let u32_at = |at: usize| -> Option<usize> {
        let b: [u8; 4] = bytes.get(at..at + 4)?.try_into().ok()?;
        usize::try_from(u32::from_le_bytes(b)).ok()
    };
    let count = u32_at(0)?;
    let mut at = 4usize.checked_add(count.checked_mul(8)?)?;
    if at > bytes.len() {
        return None;
    }
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let k = u32_at(4 + i * 8)?;
        let v = u32_at(8 + i * 8)?;
        let key = bytes.get(at..at.checked_add(k)?)?;
        at = at.checked_add(k)?.checked_add(1)?;
        let value = bytes.get(at..at.checked_add(v)?)?;
        at = at.checked_add(v)?.checked_add(1)?;
        out.push((
            String::from_utf8_lossy(key).into_owned(),
            String::from_utf8_lossy(value).into_owned(),
        ));
    }
    Some(out)
}

/// Host clock, unix nanoseconds (0 when refused).
#[cfg(target_arch = "wasm32")]
pub fn now_nanos() -> u64 {
    let mut t = 0u64;
    // SAFETY: the host writes one u64 through `t`.
    let status = unsafe { proxy_get_current_time_nanoseconds(&mut t) };
    if status == OK {
        t
    } else {
        0
    }
}

/// A host-allocated buffer handed to this module (see `get_property`).
#[cfg(target_arch = "wasm32")]
unsafe fn take(status: u32, data: *mut u8, size: usize) -> Option<Vec<u8>> {
    if status != OK {
        return None;
    }
    if data.is_null() {
        return Some(Vec::new());
    }
    // SAFETY: allocated by the host through this module's allocator, `size` bytes, now ours.
    Some(unsafe { Vec::from_raw_parts(data, size, size) })
}

#[cfg(target_arch = "wasm32")]
pub fn get_headers(map: Map) -> Option<Vec<(String, String)>> {
    let mut data: *mut u8 = std::ptr::null_mut();
    let mut size: usize = 0;
    // SAFETY: see `take`.
    let bytes = unsafe {
        let status = proxy_get_header_map_pairs(map as u32, &mut data, &mut size);
        take(status, data, size)?
    };
    if bytes.is_empty() {
        return Some(Vec::new());
    }
    deserialize_map(&bytes)
}

#[cfg(target_arch = "wasm32")]
pub fn set_header(map: Map, name: &str, value: Option<&str>) -> bool {
    // SAFETY: the buffers outlive the call; the host copies them.
    let status = unsafe {
        match value {
            Some(v) => proxy_replace_header_map_value(
                map as u32,
                name.as_ptr(),
                name.len(),
                v.as_ptr(),
                v.len(),
            ),
            None => proxy_remove_header_map_value(map as u32, name.as_ptr(), name.len()),
        }
    };
    status == OK
}

#[cfg(target_arch = "wasm32")]
pub fn get_body(body: Body, start: usize, len: usize) -> Option<Vec<u8>> {
    let mut data: *mut u8 = std::ptr::null_mut();
    let mut size: usize = 0;
    // SAFETY: see `take`.
    unsafe {
        let status = proxy_get_buffer_bytes(body as u32, start, len, &mut data, &mut size);
        take(status, data, size)
    }
}

#[cfg(target_arch = "wasm32")]
pub fn set_body(body: Body, start: usize, len: usize, bytes: &[u8]) -> bool {
    // SAFETY: the buffer outlives the call; the host copies it.
    unsafe { proxy_set_buffer_bytes(body as u32, start, len, bytes.as_ptr(), bytes.len()) == OK }
}

#[cfg(target_arch = "wasm32")]
pub fn send_local_reply(status: u16, headers: &[(&str, &str)], body: &[u8]) -> bool {
    let headers = serialize_map(headers);
    // SAFETY: the buffers outlive the call; the host copies them.
    unsafe {
        proxy_send_local_response(
            u32::from(status),
            std::ptr::null(),
            0,
            body.as_ptr(),
            body.len(),
            headers.as_ptr(),
            headers.len(),
            -1,
        ) == OK
    }
}

/// Resumes request `context_id`, paused in its headers, from the root context (`root_id`):
/// the effective context is switched to the request and back. False when refused (the request
/// is gone).
#[cfg(target_arch = "wasm32")]
pub fn resume_request(context_id: u32, root_id: u32) -> bool {
    // SAFETY: plain values.
    unsafe {
        let ok = proxy_set_effective_context(context_id) == OK && proxy_continue_stream(0) == OK;
        let _ = proxy_set_effective_context(root_id);
        ok
    }
}

/// Closes request `context_id` from the root context (`root_id`), when it cannot be resumed.
#[cfg(target_arch = "wasm32")]
pub fn close_request(context_id: u32, root_id: u32) {
    // SAFETY: plain values.
    unsafe {
        if proxy_set_effective_context(context_id) == OK {
            let _ = proxy_close_stream(0);
        }
        let _ = proxy_set_effective_context(root_id);
    }
}

/// Native builds have no host clock.
#[cfg(not(target_arch = "wasm32"))]
pub fn now_nanos() -> u64 {
    0
}

/// Native builds (clippy, docs) have no host.
#[cfg(not(target_arch = "wasm32"))]
pub fn get_headers(_map: Map) -> Option<Vec<(String, String)>> {
    None
}

/// Native builds (clippy, docs) have no host.
#[cfg(not(target_arch = "wasm32"))]
pub fn set_header(_map: Map, _name: &str, _value: Option<&str>) -> bool {
    false
}

/// Native builds (clippy, docs) have no host.
#[cfg(not(target_arch = "wasm32"))]
pub fn get_body(_body: Body, _start: usize, _len: usize) -> Option<Vec<u8>> {
    None
}

/// Native builds (clippy, docs) have no host.
#[cfg(not(target_arch = "wasm32"))]
pub fn set_body(_body: Body, _start: usize, _len: usize, _bytes: &[u8]) -> bool {
    false
}

/// Native builds (clippy, docs) have no host.
#[cfg(not(target_arch = "wasm32"))]
pub fn send_local_reply(_status: u16, _headers: &[(&str, &str)], _body: &[u8]) -> bool {
    false
}

/// Native builds (clippy, docs) have no host.
#[cfg(not(target_arch = "wasm32"))]
pub fn resume_request(_context_id: u32, _root_id: u32) -> bool {
    false
}

/// Native builds (clippy, docs) have no host.
#[cfg(not(target_arch = "wasm32"))]
pub fn close_request(_context_id: u32, _root_id: u32) {}

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

/// Lets the current context's request go on.
#[cfg(target_arch = "wasm32")]
pub fn continue_request() -> bool {
    // SAFETY: a plain value.
    unsafe { proxy_continue_stream(0) == OK }
}

/// Native builds (clippy, docs) have no host.
#[cfg(not(target_arch = "wasm32"))]
pub fn continue_request() -> bool {
    false
}

/// Native builds (clippy, docs) have no host.
#[cfg(not(target_arch = "wasm32"))]
pub fn get_shared_data(_key: &str) -> SharedRead {
    SharedRead::Refused
}

/// Native builds (clippy, docs) have no host.
#[cfg(not(target_arch = "wasm32"))]
pub fn set_shared_data(_key: &str, _value: &[u8], _version: Option<u32>) -> SharedWrite {
    SharedWrite::Refused
}

/// Status of a shared-data key that does not exist.
#[cfg(target_arch = "wasm32")]
const NOT_FOUND: u32 = 1;
/// Status of a shared-data write that lost the race.
#[cfg(target_arch = "wasm32")]
const CAS_MISMATCH: u32 = 8;

/// A shared-data value and its version.
#[cfg(target_arch = "wasm32")]
pub fn get_shared_data(key: &str) -> SharedRead {
    let mut data: *mut u8 = std::ptr::null_mut();
    let mut size: usize = 0;
    let mut cas: u32 = 0;
    // SAFETY: see `take`; the host writes the version through `cas`.
    unsafe {
        let status = proxy_get_shared_data(key.as_ptr(), key.len(), &mut data, &mut size, &mut cas);
        if status == NOT_FOUND {
            return SharedRead::Absent;
        }
        match take(status, data, size) {
            Some(v) => SharedRead::Found(v, cas),
            None => SharedRead::Refused,
        }
    }
}

/// Writes a shared-data value if its version is still `version` (the host's 0: unconditionally).
#[cfg(target_arch = "wasm32")]
pub fn set_shared_data(key: &str, value: &[u8], version: Option<u32>) -> SharedWrite {
    // SAFETY: both buffers outlive the call; the host copies them.
    let status = unsafe {
        proxy_set_shared_data(
            key.as_ptr(),
            key.len(),
            value.as_ptr(),
            value.len(),
            version.unwrap_or(0),
        )
    };
    match status {
        OK => SharedWrite::Done,
        CAS_MISMATCH => SharedWrite::Changed,
        _ => SharedWrite::Refused,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_joined_with_nul() {
        assert_eq!(serialize_path(&["tollgate.summary"]), b"tollgate.summary");
        assert_eq!(serialize_path(&["request", "time"]), b"request\0time");
        assert_eq!(serialize_path(&[]), b"");
    }

    #[test]
    fn header_maps_round_trip_and_bad_ones_are_none() {
        let pairs = [(":path", "/v1/chat"), ("x-empty", ""), ("k", "välue")];
        let bytes = serialize_map(&pairs);
        let back = deserialize_map(&bytes).unwrap();
        assert_eq!(
            back,
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Vec<_>>()
        );
        assert_eq!(deserialize_map(&serialize_map(&[])).unwrap(), vec![]);
        for cut in 0..bytes.len() - 1 {
            assert!(deserialize_map(&bytes[..cut]).is_none(), "cut at {cut}");
        }
        assert!(deserialize_map(&[255, 255, 255, 255]).is_none());
    }
}
