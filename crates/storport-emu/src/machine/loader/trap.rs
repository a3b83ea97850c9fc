//! Trap stubs for imports the emulator does not implement (loading with
//! missing imports allowed): each missing import is bound to a 16-byte stub
//! `mov eax, index; jmp common`, and the common part calls
//! [`unbound_import`] with the index, the caller's return address and the
//! table of names, which ends the driver call with
//! `Fault::UnboundImport` through the gate's abort path.

use std::io;

use crate::machine::code::CodePage;
use crate::machine::fault::{Fault, UnboundImport};
use crate::machine::{gate, images};

const ENTRIES_OFFSET: usize = 64;
const ENTRY_SIZE: usize = 16;

/// The names behind the stubs, owned by the loaded image.
#[derive(Debug)]
pub struct TrapTable {
    names: Vec<(String, String)>,
}

/// Generated trap stubs and their table.
///
/// # Invariants
///
/// `page` embeds the address of `*table`, which is boxed (stable) and dropped
/// only together with the page.
#[derive(Debug)]
pub struct TrapStubs {
    page: CodePage,
    #[expect(
        dead_code,
        reason = "owned for its lifetime only: the stub page embeds its address"
    )]
    table: Box<TrapTable>,
}

impl TrapStubs {
    /// Generates one stub per `(dll, function)`.
    pub fn new(image: &str, names: Vec<(String, String)>) -> io::Result<Self> {
        let table = Box::new(TrapTable { names });
        let table_addr = (&raw const *table) as u64;
        let handler = unbound_import as *const () as u64;
        let mut code = Vec::with_capacity(ENTRIES_OFFSET + ENTRY_SIZE * table.names.len());
        code.extend_from_slice(&[0x89, 0xC1]); // mov ecx, eax
        code.extend_from_slice(&[0x48, 0x8B, 0x14, 0x24]); // mov rdx, [rsp]
        code.extend_from_slice(&[0x49, 0xB8]); // movabs r8, table
        code.extend_from_slice(&table_addr.to_le_bytes());
        code.extend_from_slice(&[0x48, 0xB8]); // movabs rax, handler
        code.extend_from_slice(&handler.to_le_bytes());
        // Entry rsp is 8 mod 16 (just after the driver's call): 40 bytes
        // realign it and give the handler its home area.
        code.extend_from_slice(&[0x48, 0x83, 0xEC, 0x28]); // sub rsp, 40
        code.extend_from_slice(&[0xFF, 0xD0]); // call rax
        code.extend_from_slice(&[0x0F, 0x0B]); // ud2 (the handler never returns)
        code.resize(ENTRIES_OFFSET, 0xCC);
        for index in 0..table.names.len() {
            let at = code.len();
            let index =
                u32::try_from(index).map_err(|_| io::Error::other("too many trap stubs"))?;
            code.push(0xB8); // mov eax, index
            code.extend_from_slice(&index.to_le_bytes());
            let rel =
                i32::try_from(at + 10).map_err(|_| io::Error::other("trap stub page too large"))?;
            code.push(0xE9); // jmp common
            code.extend_from_slice(&(-rel).to_le_bytes());
            code.resize(at + ENTRY_SIZE, 0xCC);
        }
        let page = CodePage::new(&format!("{image} import traps"), &code)?;
        // INVARIANT: the page embeds the boxed table's address; both live in `Self`.
        Ok(Self { page, table })
    }

    /// Address of the stub for the `index`-th name.
    pub const fn entry(&self, index: usize) -> usize {
        self.page.addr() + ENTRIES_OFFSET + index * ENTRY_SIZE
    }
}

/// Called by a trap stub on the driver's stack.
extern "win64" fn unbound_import(index: u32, return_address: usize, table: *const TrapTable) -> ! {
    // SAFETY: `table` is the address the stub page embeds; by the TrapStubs
    // invariant it stays valid while the page can run.
    let table = unsafe { &*table };
    let (dll, function) = usize::try_from(index)
        .ok()
        .and_then(|i| table.names.get(i))
        .cloned()
        .unwrap_or_else(|| ("?".to_owned(), format!("#{index}")));
    gate::abort_current_call_with(Fault::UnboundImport(Box::new(UnboundImport {
        dll,
        function,
        return_address,
        caller: images::locate(return_address),
    })))
}
