//! nftables through libnftables, in-process: [`Nft`] owns one long-lived
//! context and applies JSON batches; [`Firewall`] is the seam drivers use,
//! with [`FakeFirewall`] recording batches for plan tests.
//!
//! A batch (`{"nftables": [...]}`) is one netlink transaction: the kernel
//! applies all of it or none of it. Applying one costs one parse and one
//! transaction: no process is spawned and no ruleset is listed. (libnftables
//! does fetch the cache of the tables a batch names, which is why cell's
//! tables hold few rules and many set elements.)
//!
//! Which namespace a context talks to: libnftables 1.0.6 opens its netlink
//! socket in `nft_ctx_new`, so a context keeps talking to the network
//! namespace of the thread that created it, whichever thread uses it later
//! (checked by the `context_stays_in_its_netns` root test). Create one
//! [`Nft`] per namespace, e.g. inside [`crate::in_netns`].

use crate::error::{NetError, Result};
use serde_json::Value;
use std::ffi::{CStr, CString, c_char, c_int, c_uint};
use std::sync::Mutex;

#[repr(C)]
struct NftCtx {
    _opaque: [u8; 0],
}

const NFT_CTX_DEFAULT: u32 = 0;
const NFT_CTX_OUTPUT_JSON: c_uint = 1 << 4;

#[link(name = "nftables")]
unsafe extern "C" {
    fn nft_ctx_new(flags: u32) -> *mut NftCtx;
    fn nft_ctx_free(ctx: *mut NftCtx);
    fn nft_ctx_output_set_flags(ctx: *mut NftCtx, flags: c_uint);
    fn nft_ctx_buffer_output(ctx: *mut NftCtx) -> c_int;
    fn nft_ctx_buffer_error(ctx: *mut NftCtx) -> c_int;
    fn nft_ctx_get_output_buffer(ctx: *mut NftCtx) -> *const c_char;
    fn nft_ctx_get_error_buffer(ctx: *mut NftCtx) -> *const c_char;
    fn nft_run_cmd_from_buffer(ctx: *mut NftCtx, buf: *const c_char) -> c_int;
}

/// Applies nftables batches. Implementations are shared by the engine.
pub trait Firewall: Send + Sync {
    /// Applies one batch atomically: on error nothing of it is applied.
    fn apply(&self, batch: &Value) -> Result<()>;
}

struct Ctx(*mut NftCtx);

// SAFETY: the context is only ever used under `Nft`'s mutex, so no two
// threads touch it at once, and libnftables keeps no thread-local state: it
// can be used from any thread (its socket stays in the namespace it was
// opened in).
unsafe impl Send for Ctx {}

impl Drop for Ctx {
    fn drop(&mut self) {
        // SAFETY: the pointer came from `nft_ctx_new`, is non-null and is
        // freed exactly once, here.
        unsafe { nft_ctx_free(self.0) }
    }
}

/// An in-process libnftables context with JSON input and output, bound to
/// the network namespace it was created in.
pub struct Nft {
    ctx: Mutex<Ctx>,
}

impl std::fmt::Debug for Nft {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Nft").finish_non_exhaustive()
    }
}

/// The text of one of the context's buffers; reading it also empties it.
///
/// # Safety
/// `buf` must be null or a NUL-terminated string owned by the context.
unsafe fn buffer_text(buf: *const c_char) -> String {
    if buf.is_null() {
        return String::new();
    }
    // SAFETY: guaranteed by the caller.
    unsafe { CStr::from_ptr(buf) }
        .to_string_lossy()
        .trim()
        .to_string()
}

impl Nft {
    /// Creates a context in the calling thread's network namespace.
    pub fn new() -> Result<Self> {
        // SAFETY: plain constructor call; a null result is handled.
        let raw = unsafe { nft_ctx_new(NFT_CTX_DEFAULT) };
        if raw.is_null() {
            return Err(NetError::NftContext);
        }
        let ctx = Ctx(raw);
        // SAFETY: `ctx.0` is a valid context owned by `ctx`. Buffering makes
        // libnftables write output and errors into memory we read back,
        // instead of to the process's stdout and stderr.
        unsafe {
            nft_ctx_output_set_flags(ctx.0, NFT_CTX_OUTPUT_JSON);
            if nft_ctx_buffer_output(ctx.0) != 0 || nft_ctx_buffer_error(ctx.0) != 0 {
                return Err(NetError::NftContext);
            }
        }
        Ok(Self { ctx: Mutex::new(ctx) })
    }

    /// Runs one command buffer; returns nft's output, or its error text.
    fn run(&self, text: &str) -> std::result::Result<String, String> {
        let ctx = self.ctx.lock().unwrap_or_else(|p| p.into_inner());
        let cmd = CString::new(text).map_err(|_| "command contains a NUL byte".to_string())?;
        // SAFETY: `ctx.0` is valid while we hold the lock, `cmd` outlives the
        // call; the buffers are read right after, before any other command
        // can run on this context.
        unsafe {
            let rc = nft_run_cmd_from_buffer(ctx.0, cmd.as_ptr());
            let output = buffer_text(nft_ctx_get_output_buffer(ctx.0));
            let error = buffer_text(nft_ctx_get_error_buffer(ctx.0));
            if rc == 0 {
                Ok(output)
            } else if error.is_empty() {
                Err(format!("nft returned {rc}"))
            } else {
                Err(error)
            }
        }
    }

    /// Applies one JSON batch (`{"nftables": [...]}`) as one transaction.
    pub fn apply(&self, batch: &Value) -> Result<()> {
        self.run(&batch.to_string())
            .map(drop)
            .map_err(|message| NetError::NftApply {
                tables: tables_of(batch),
                message,
            })
    }

    /// Lists one table as nft's JSON (`{"nftables": [metainfo, table,
    /// chains, sets with elements, rules...]}`).
    pub fn list_table(&self, family: &str, name: &str) -> Result<Value> {
        let cmd = serde_json::json!({"nftables": [
            {"list": {"table": {"family": family, "name": name}}}
        ]});
        let err = |message| NetError::NftList {
            family: family.to_string(),
            name: name.to_string(),
            message,
        };
        let output = self.run(&cmd.to_string()).map_err(err)?;
        serde_json::from_str(&output).map_err(|e| err(format!("unparsable output: {e}")))
    }
}

impl Firewall for Nft {
    fn apply(&self, batch: &Value) -> Result<()> {
        Nft::apply(self, batch)
    }
}

/// The distinct `family name` tables a batch names, for error messages.
fn tables_of(batch: &Value) -> String {
    let mut tables: Vec<String> = Vec::new();
    let cmds = batch["nftables"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    for cmd in cmds {
        let Some(verb) = cmd.as_object().and_then(|o| o.values().next()) else {
            continue;
        };
        let Some(object) = verb.as_object().and_then(|o| o.values().next()) else {
            continue;
        };
        let family = object["family"].as_str().unwrap_or("?");
        let table = object
            .get("table")
            .or_else(|| object.get("name"))
            .and_then(Value::as_str)
            .unwrap_or("?");
        let t = format!("{family} {table}");
        if !tables.contains(&t) {
            tables.push(t);
        }
    }
    if tables.is_empty() {
        "no table".to_string()
    } else {
        tables.join(", ")
    }
}

/// A recording [`Firewall`]: keeps every batch it is given, and can be told
/// to fail the `n`th call.
#[derive(Debug, Default)]
pub struct FakeFirewall {
    state: Mutex<(Vec<Value>, usize, Option<usize>)>,
}

impl FakeFirewall {
    /// A fake that accepts everything.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes the `n`th call from now on (1-based) fail; the failed batch is
    /// not recorded as applied.
    pub fn fail_call(&self, n: usize) {
        let mut state = self.state.lock().unwrap();
        state.2 = Some(state.1 + n);
    }

    /// The batches applied so far, in order.
    pub fn batches(&self) -> Vec<Value> {
        self.state.lock().unwrap().0.clone()
    }

    /// How many calls were made (failed ones included).
    pub fn calls(&self) -> usize {
        self.state.lock().unwrap().1
    }
}

impl Firewall for FakeFirewall {
    fn apply(&self, batch: &Value) -> Result<()> {
        let mut state = self.state.lock().unwrap();
        state.1 += 1;
        if state.2 == Some(state.1) {
            state.2 = None;
            return Err(NetError::Injected { call: state.1 });
        }
        state.0.push(batch.clone());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_tables_of_a_batch() {
        let batch = json!({"nftables": [
            {"add": {"table": {"family": "inet", "name": "cell"}}},
            {"add": {"element": {"family": "bridge", "table": "cell", "name": "x", "elem": []}}},
            {"add": {"set": {"family": "inet", "table": "cell", "name": "y"}}},
        ]});
        assert_eq!(tables_of(&batch), "inet cell, bridge cell");
    }

    #[test]
    fn fake_records_and_fails() {
        let fw = FakeFirewall::new();
        fw.fail_call(2);
        fw.apply(&json!({"nftables": [1]})).unwrap();
        assert!(matches!(
            fw.apply(&json!({"nftables": [2]})),
            Err(NetError::Injected { call: 2 })
        ));
        fw.apply(&json!({"nftables": [3]})).unwrap();
        assert_eq!(
            fw.batches(),
            vec![json!({"nftables": [1]}), json!({"nftables": [3]})]
        );
    }
}
