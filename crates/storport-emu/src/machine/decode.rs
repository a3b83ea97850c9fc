//! Decoding of the few x86-64 instructions the machine emulates: moves to and
//! from CR8 (the IRQL), and loads that may read `KUSER_SHARED_DATA`.
//! Pure functions on instruction bytes, tested directly.

/// A register operand: 0 = rax, 1 = rcx, ... 15 = r15 (the x86 numbering).
pub type Gpr = u8;

/// A decoded memory operand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mem {
    /// `[base + index * scale + disp]`, each part optional.
    Regs {
        base: Option<Gpr>,
        index: Option<(Gpr, u8)>,
        disp: i64,
    },
    /// `[rip + disp]`, relative to the next instruction.
    RipRelative { disp: i64 },
    /// A 64-bit absolute address (`mov rax, moffs64`).
    Absolute(u64),
}

/// How a loaded value is put into its destination register.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Extend {
    /// Plain `mov`: 8/16-bit loads merge into the low bits, 32-bit loads
    /// zero the upper half, 64-bit loads replace the register.
    Merge,
    /// `movzx` to a register of `dest_bytes`.
    Zero { dest_bytes: u8 },
    /// `movsx`/`movsxd` to a register of `dest_bytes`.
    Sign { dest_bytes: u8 },
}

/// An instruction the machine knows how to emulate (or report precisely).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Insn {
    /// `mov reg, crN`.
    MovFromCr { cr: u8, reg: Gpr },
    /// `mov crN, reg`.
    MovToCr { cr: u8, reg: Gpr },
    /// A load of `bytes` from `mem` into `reg`; `high_byte` for AH/CH/DH/BH.
    Load {
        reg: Gpr,
        high_byte: bool,
        bytes: u8,
        extend: Extend,
        mem: Mem,
    },
    /// `int 0x29` (`__fastfail`).
    FastFail,
    /// `int3`.
    Breakpoint,
    /// `ud2`.
    Ud2,
}

/// An instruction and its length in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decoded {
    pub insn: Insn,
    pub len: usize,
}

struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn byte(&mut self) -> Option<u8> {
        let b = *self.bytes.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }

    fn le<const N: usize>(&mut self) -> Option<[u8; N]> {
        let s = self.bytes.get(self.pos..self.pos + N)?;
        self.pos += N;
        s.try_into().ok()
    }

    fn disp8(&mut self) -> Option<i64> {
        Some(i64::from(i8::from_le_bytes(self.le::<1>()?)))
    }

    fn disp32(&mut self) -> Option<i64> {
        Some(i64::from(i32::from_le_bytes(self.le::<4>()?)))
    }
}

/// Decodes the instruction at the start of `bytes` if it is one the machine
/// handles; `None` otherwise (including truncated input).
pub fn decode(bytes: &[u8]) -> Option<Decoded> {
    let mut c = Cursor { bytes, pos: 0 };
    let mut operand16 = false;
    let mut rex = 0_u8;
    let opcode = loop {
        let b = c.byte()?;
        match b {
            0x66 => operand16 = true,
            // Segment overrides other than FS/GS are no-ops in 64-bit mode.
            0x26 | 0x2E | 0x36 | 0x3E => {}
            0x40..=0x4F => {
                rex = b;
                let next = c.byte()?;
                break next;
            }
            _ => break b,
        }
    };
    let rex_w = rex & 8 != 0;
    let size = if rex_w {
        8
    } else if operand16 {
        2
    } else {
        4
    };
    let insn = match opcode {
        0xCC => Insn::Breakpoint,
        0xCD if c.byte()? == 0x29 => Insn::FastFail,
        0x0F => two_byte(&mut c, rex, size)?,
        0x8B => {
            let (reg, mem) = modrm_mem(&mut c, rex)?;
            Insn::Load {
                reg,
                high_byte: false,
                bytes: size,
                extend: Extend::Merge,
                mem,
            }
        }
        0x8A => {
            let (reg, mem) = modrm_mem(&mut c, rex)?;
            let high_byte = rex == 0 && (4..8).contains(&reg);
            let reg = if high_byte { reg - 4 } else { reg };
            Insn::Load {
                reg,
                high_byte,
                bytes: 1,
                extend: Extend::Merge,
                mem,
            }
        }
        0x63 if rex_w => {
            let (reg, mem) = modrm_mem(&mut c, rex)?;
            Insn::Load {
                reg,
                high_byte: false,
                bytes: 4,
                extend: Extend::Sign { dest_bytes: 8 },
                mem,
            }
        }
        0xA0 | 0xA1 => {
            let addr = u64::from_le_bytes(c.le::<8>()?);
            let bytes = if opcode == 0xA0 { 1 } else { size };
            Insn::Load {
                reg: 0,
                high_byte: false,
                bytes,
                extend: Extend::Merge,
                mem: Mem::Absolute(addr),
            }
        }
        _ => return None,
    };
    Some(Decoded { insn, len: c.pos })
}

/// Decodes the handled `0F xx` opcodes.
fn two_byte(c: &mut Cursor<'_>, rex: u8, size: u8) -> Option<Insn> {
    let rex_r = (rex & 4) << 1;
    let insn = match c.byte()? {
        0x0B => Insn::Ud2,
        op @ (0x20 | 0x22) => {
            let modrm = c.byte()?;
            if modrm >> 6 != 3 {
                return None;
            }
            let cr = ((modrm >> 3) & 7) | rex_r;
            let reg = (modrm & 7) | ((rex & 1) << 3);
            if op == 0x20 {
                Insn::MovFromCr { cr, reg }
            } else {
                Insn::MovToCr { cr, reg }
            }
        }
        op @ (0xB6 | 0xB7 | 0xBE | 0xBF) => {
            let (reg, mem) = modrm_mem(c, rex)?;
            let bytes = if op & 1 == 0 { 1 } else { 2 };
            let extend = if op < 0xBE {
                Extend::Zero { dest_bytes: size }
            } else {
                Extend::Sign { dest_bytes: size }
            };
            Insn::Load {
                reg,
                high_byte: false,
                bytes,
                extend,
                mem,
            }
        }
        _ => return None,
    };
    Some(insn)
}

/// Decodes a `ModRM` memory operand (and its SIB and displacement); `None` for
/// a register operand.
fn modrm_mem(c: &mut Cursor<'_>, rex: u8) -> Option<(Gpr, Mem)> {
    let modrm = c.byte()?;
    let mode = modrm >> 6;
    let reg = ((modrm >> 3) & 7) | ((rex & 4) << 1);
    let rm = modrm & 7;
    if mode == 3 {
        return None;
    }
    let (base, index) = if rm == 4 {
        let sib = c.byte()?;
        let scale = 1_u8 << (sib >> 6);
        let index = ((sib >> 3) & 7) | ((rex & 2) << 2);
        let index = if index == 4 {
            None
        } else {
            Some((index, scale))
        };
        let base = if sib & 7 == 5 && mode == 0 {
            None
        } else {
            Some((sib & 7) | ((rex & 1) << 3))
        };
        (base, index)
    } else if rm == 5 && mode == 0 {
        let disp = c.disp32()?;
        return Some((reg, Mem::RipRelative { disp }));
    } else {
        (Some(rm | ((rex & 1) << 3)), None)
    };
    let disp = match mode {
        1 => c.disp8()?,
        2 => c.disp32()?,
        _ if base.is_none() => c.disp32()?,
        _ => 0,
    };
    Some((reg, Mem::Regs { base, index, disp }))
}

/// Puts a loaded value into a register the way the instruction does.
pub fn merge(old: u64, value: u64, bytes: u8, high_byte: bool, extend: Extend) -> u64 {
    let mask = |n: u8| {
        if n >= 8 {
            u64::MAX
        } else {
            (1_u64 << (u32::from(n) * 8)) - 1
        }
    };
    let value = value & mask(bytes);
    let extended = |dest_bytes: u8, v: u64| {
        if dest_bytes == 2 {
            (old & !0xFFFF) | (v & 0xFFFF)
        } else {
            v & mask(dest_bytes)
        }
    };
    match extend {
        Extend::Merge if high_byte => (old & !0xFF00) | (value << 8),
        Extend::Merge if bytes >= 4 => value,
        Extend::Merge => (old & !mask(bytes)) | value,
        Extend::Zero { dest_bytes } => extended(dest_bytes, value),
        Extend::Sign { dest_bytes } => {
            let shift = 64 - u32::from(bytes) * 8;
            let signed = (value << shift).cast_signed() >> shift;
            extended(dest_bytes, signed.cast_unsigned())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_cr8_moves_with_rex() {
        // mov rax, cr8 / mov cr8, rcx / mov r9, cr8 / mov cr8, r15
        assert_eq!(
            decode(&[0x44, 0x0F, 0x20, 0xC0]),
            Some(Decoded {
                insn: Insn::MovFromCr { cr: 8, reg: 0 },
                len: 4
            })
        );
        assert_eq!(
            decode(&[0x44, 0x0F, 0x22, 0xC1]),
            Some(Decoded {
                insn: Insn::MovToCr { cr: 8, reg: 1 },
                len: 4
            })
        );
        assert_eq!(
            decode(&[0x45, 0x0F, 0x20, 0xC1]),
            Some(Decoded {
                insn: Insn::MovFromCr { cr: 8, reg: 9 },
                len: 4
            })
        );
        assert_eq!(
            decode(&[0x45, 0x0F, 0x22, 0xC7]),
            Some(Decoded {
                insn: Insn::MovToCr { cr: 8, reg: 15 },
                len: 4
            })
        );
        assert_eq!(
            decode(&[0x0F, 0x20, 0xC0]),
            Some(Decoded {
                insn: Insn::MovFromCr { cr: 0, reg: 0 },
                len: 3
            })
        );
        assert_eq!(decode(&[0x44, 0x0F, 0x20]), None);
    }

    #[test]
    fn decodes_loads() {
        // mov rax, [rax]
        let d = decode(&[0x48, 0x8B, 0x00]).unwrap();
        assert_eq!(d.len, 3);
        assert_eq!(
            d.insn,
            Insn::Load {
                reg: 0,
                high_byte: false,
                bytes: 8,
                extend: Extend::Merge,
                mem: Mem::Regs {
                    base: Some(0),
                    index: None,
                    disp: 0
                }
            }
        );
        // mov ecx, [rdx + 0x320]
        let d = decode(&[0x8B, 0x8A, 0x20, 0x03, 0, 0]).unwrap();
        assert_eq!(d.len, 6);
        assert_eq!(
            d.insn,
            Insn::Load {
                reg: 1,
                high_byte: false,
                bytes: 4,
                extend: Extend::Merge,
                mem: Mem::Regs {
                    base: Some(2),
                    index: None,
                    disp: 0x320
                }
            }
        );
        // mov r10d, [r11 + r12*8 - 8]
        let d = decode(&[0x47, 0x8B, 0x54, 0xE3, 0xF8]).unwrap();
        assert_eq!(
            d.insn,
            Insn::Load {
                reg: 10,
                high_byte: false,
                bytes: 4,
                extend: Extend::Merge,
                mem: Mem::Regs {
                    base: Some(11),
                    index: Some((12, 8)),
                    disp: -8
                }
            }
        );
        // mov rax, [0xFFFFF78000000320]
        let d = decode(&[0x48, 0xA1, 0x20, 0x03, 0, 0, 0x80, 0xF7, 0xFF, 0xFF]).unwrap();
        assert_eq!(d.len, 10);
        assert_eq!(
            d.insn,
            Insn::Load {
                reg: 0,
                high_byte: false,
                bytes: 8,
                extend: Extend::Merge,
                mem: Mem::Absolute(0xFFFF_F780_0000_0320)
            }
        );
        // movzx eax, byte [rip + 0x10]
        let d = decode(&[0x0F, 0xB6, 0x05, 0x10, 0, 0, 0]).unwrap();
        assert_eq!(
            d.insn,
            Insn::Load {
                reg: 0,
                high_byte: false,
                bytes: 1,
                extend: Extend::Zero { dest_bytes: 4 },
                mem: Mem::RipRelative { disp: 0x10 }
            }
        );
        // mov ah, [rbx] / mov eax, [disp32] via SIB without base
        assert_eq!(
            decode(&[0x8A, 0x23]).unwrap().insn,
            Insn::Load {
                reg: 0,
                high_byte: true,
                bytes: 1,
                extend: Extend::Merge,
                mem: Mem::Regs {
                    base: Some(3),
                    index: None,
                    disp: 0
                }
            }
        );
        assert_eq!(
            decode(&[0x8B, 0x04, 0x25, 0x08, 0, 0, 0]).unwrap().insn,
            Insn::Load {
                reg: 0,
                high_byte: false,
                bytes: 4,
                extend: Extend::Merge,
                mem: Mem::Regs {
                    base: None,
                    index: None,
                    disp: 8
                }
            }
        );
        // Register operands and stores are not loads.
        assert_eq!(decode(&[0x48, 0x8B, 0xC1]), None);
        assert_eq!(decode(&[0x48, 0x89, 0x00]), None);
    }

    #[test]
    fn decodes_traps() {
        assert_eq!(decode(&[0xCD, 0x29]).unwrap().insn, Insn::FastFail);
        assert_eq!(decode(&[0x0F, 0x0B]).unwrap().insn, Insn::Ud2);
        assert_eq!(decode(&[0xCC]).unwrap().insn, Insn::Breakpoint);
        assert_eq!(decode(&[0xCD, 0x2C]), None);
    }

    #[test]
    fn merges_like_the_processor() {
        let old = 0x1111_2222_3333_4444;
        assert_eq!(
            merge(old, 0xAABB_CCDD, 4, false, Extend::Merge),
            0xAABB_CCDD
        );
        assert_eq!(
            merge(old, 0xCCDD, 2, false, Extend::Merge),
            0x1111_2222_3333_CCDD
        );
        assert_eq!(
            merge(old, 0xDD, 1, false, Extend::Merge),
            0x1111_2222_3333_44DD
        );
        assert_eq!(
            merge(old, 0xDD, 1, true, Extend::Merge),
            0x1111_2222_3333_DD44
        );
        assert_eq!(
            merge(old, 0xFF, 1, false, Extend::Sign { dest_bytes: 8 }),
            u64::MAX
        );
        assert_eq!(
            merge(old, 0xFF, 1, false, Extend::Sign { dest_bytes: 4 }),
            0xFFFF_FFFF
        );
        assert_eq!(
            merge(old, 0xFF, 1, false, Extend::Zero { dest_bytes: 2 }),
            0x1111_2222_3333_00FF
        );
        assert_eq!(
            merge(old, 0x8000_0000, 4, false, Extend::Sign { dest_bytes: 8 }),
            0xFFFF_FFFF_8000_0000
        );
    }
}
