//! Installing from an INF into the emulated registry.

use storport_emu::inf::{
    Inf, InstallError, InstallOptions, install, install_default, service_name_for_image,
};
use storport_emu::registry::{RegType, RegValue, Registry};

/// A root-enumerated virtual Storport miniport INF in the usual shape.
const VSTOR_INF: &str = r#"
; vstor.inf - test fixture
[Version]
Signature   = "$WINDOWS NT$"
Class       = SCSIAdapter
ClassGuid   = {4d36e97b-e325-11ce-bfc1-08002be10318}
Provider    = %ProviderName%
DriverVer   = 01/01/2026,1.0.0.0
CatalogFile = vstor.cat
PnpLockdown = 1

[DestinationDirs]
DefaultDestDir = 13

[SourceDisksNames]
1 = %DiskName%,,,""

[SourceDisksFiles]
vstor.sys = 1,,

[Manufacturer]
%ManufacturerName% = Standard, NTamd64.10.0...16299, NTarm64

[Standard.NTamd64.10.0...16299]
%DeviceDesc% = vstor_Device, root\vstor

[Standard.NTarm64]
%DeviceDesc% = wrong_Device, root\vstor

[vstor_Device.NT]
CopyFiles = vstor_CopyFiles
AddReg    = vstor_DriverKey

[vstor_Device.NT.HW]
AddReg = vstor_HwKey

[vstor_CopyFiles]
vstor.sys

[vstor_Device.NT.Services]
AddService = vstor, 0x00000002, vstor_Service_Inst, vstor_EventLog_Inst

[vstor_Service_Inst]
DisplayName    = %ServiceDesc%
ServiceType    = 1               ; SERVICE_KERNEL_DRIVER
StartType      = 3               ; SERVICE_DEMAND_START
ErrorControl   = 0x1             ; SERVICE_ERROR_NORMAL
ServiceBinary  = %13%\vstor.sys
LoadOrderGroup = "SCSI Miniport"
AddReg         = vstor_Parameters, vstor_Device_Defaults

[vstor_Parameters]
HKR, "Parameters", "BusType", 0x00010001, 0xE
HKR, "Parameters\PnpInterface", "0", 0x00010001, 0x00000001

[vstor_Device_Defaults]
HKR, "Parameters\Device", "DiskCount",   0x00010001, 2
HKR, "Parameters\Device", "DiskSizeMb",  %REG_DWORD%, 64
HKR, "Parameters\Device", "VendorId",    0x00000000, "VSTOR   "
HKR, "Parameters\Device", "Targets",     0x00010000, "t0", "t1"
HKR, "Parameters\Device", "Serial",      0x00000001, 0a, 1B, ff
HKR, "Parameters\Device", "Capacity",    0x000B0001, 0x100000000
HKR, "Parameters\Device", "Path",        0x00020000, "%%SystemRoot%%\temp"
HKR, "Parameters\Device0",,0x00000010

[vstor_EventLog_Inst]
AddReg = vstor_EventLog_AddReg

[vstor_EventLog_AddReg]
HKR,,EventMessageFile,0x00020000,"%%SystemRoot%%\System32\IoLogMsg.dll"
HKR,,TypesSupported,0x00010001,7

[vstor_DriverKey]
HKR,,DriverDesc,,%DeviceDesc%

[vstor_HwKey]
HKR,,Interrupt,0x00010001,0

[Strings]
ProviderName     = "vstor project"
ManufacturerName = "vstor"
DeviceDesc       = "vstor virtual SCSI adapter"
ServiceDesc      = "vstor Storport virtual miniport"
DiskName         = "vstor installation disk"
REG_DWORD        = 0x00010001
"#;

const SVC: &str = "Services\\vstor";
const DEVICE: &str = "Services\\vstor\\Parameters\\Device";

fn installed() -> (Registry, storport_emu::inf::Installed) {
    let inf = Inf::parse(VSTOR_INF).unwrap();
    let mut reg = Registry::new();
    let done =
        install(&inf, &mut reg, &InstallOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    (reg, done)
}

#[test]
fn picks_amd64_models_and_decorated_ddinstall() {
    let (_, done) = installed();
    assert_eq!(done.service, "vstor");
    assert_eq!(done.services, ["vstor"]);
    assert_eq!(done.hardware_id, "root\\vstor");
    assert_eq!(done.models_section, "Standard.NTamd64.10.0...16299");
    assert_eq!(done.install_section, "vstor_Device.NT");
    assert!(done.notes.is_empty(), "{:?}", done.notes);
}

#[test]
fn service_values_look_like_windows() {
    let (reg, _) = installed();
    assert_eq!(reg.value(SVC, "Type"), Some(&RegValue::dword(1)));
    assert_eq!(reg.value(SVC, "Start"), Some(&RegValue::dword(3)));
    assert_eq!(reg.value(SVC, "ErrorControl"), Some(&RegValue::dword(1)));
    assert_eq!(
        reg.value(SVC, "ImagePath"),
        Some(&RegValue::expand_sz(
            "\\SystemRoot\\System32\\DriverStore\\FileRepository\\storemu.inf_amd64\\vstor.sys"
        ))
    );
    assert_eq!(
        reg.value(SVC, "Group"),
        Some(&RegValue::sz("SCSI Miniport"))
    );
    assert_eq!(
        reg.value(SVC, "DisplayName"),
        Some(&RegValue::sz("vstor Storport virtual miniport"))
    );
}

#[test]
fn addreg_lines_become_typed_values() {
    let (reg, _) = installed();
    let params = "Services\\vstor\\Parameters";
    assert_eq!(
        reg.raw(params, "BusType"),
        Some((RegType::DWORD, &[0x0E, 0, 0, 0][..]))
    );
    assert_eq!(
        reg.value(&format!("{params}\\PnpInterface"), "0"),
        Some(&RegValue::dword(1))
    );
    assert_eq!(reg.value(DEVICE, "DiskCount"), Some(&RegValue::dword(2)));
    assert_eq!(reg.value(DEVICE, "DiskSizeMb"), Some(&RegValue::dword(64)));
    assert_eq!(
        reg.value(DEVICE, "VendorId"),
        Some(&RegValue::sz("VSTOR   "))
    );
    assert_eq!(
        reg.value(DEVICE, "Targets"),
        Some(&RegValue::multi_sz(&["t0", "t1"]))
    );
    assert_eq!(
        reg.value(DEVICE, "Serial"),
        Some(&RegValue::binary(&[0x0a, 0x1b, 0xff]))
    );
    assert_eq!(
        reg.value(DEVICE, "Capacity"),
        Some(&RegValue::qword(0x1_0000_0000))
    );
    assert_eq!(
        reg.value(DEVICE, "Path"),
        Some(&RegValue::expand_sz("%SystemRoot%\\temp"))
    );
    assert!(reg.key_exists("Services\\vstor\\Parameters\\Device0"));
    assert_eq!(
        reg.values("Services\\vstor\\Parameters\\Device0")
            .map(|v| v.len()),
        Some(0)
    );
}

#[test]
fn event_log_driver_and_hardware_keys() {
    let (reg, _) = installed();
    let log = "Services\\EventLog\\System\\vstor";
    assert_eq!(reg.value(log, "TypesSupported"), Some(&RegValue::dword(7)));
    assert_eq!(
        reg.value(log, "EventMessageFile"),
        Some(&RegValue::expand_sz("%SystemRoot%\\System32\\IoLogMsg.dll"))
    );
    assert_eq!(
        reg.value(
            "Control\\Class\\{4d36e97b-e325-11ce-bfc1-08002be10318}\\0000",
            "DriverDesc"
        ),
        Some(&RegValue::sz("vstor virtual SCSI adapter"))
    );
    let instance = "Enum\\ROOT\\VSTOR\\0000";
    assert_eq!(reg.value(instance, "Service"), Some(&RegValue::sz("vstor")));
    assert_eq!(
        reg.value(instance, "HardwareID"),
        Some(&RegValue::multi_sz(&["root\\vstor"]))
    );
    assert_eq!(
        reg.value(&format!("{instance}\\Device Parameters"), "Interrupt"),
        Some(&RegValue::dword(0))
    );
}

#[test]
fn dump_is_stable() {
    let (reg, _) = installed();
    let dump = reg.to_string();
    assert!(
        dump.contains("[Services\\vstor\\Parameters]\n  \"BusType\" = REG_DWORD 0x0000000e (14)\n")
    );
    assert!(dump.contains("[Services\\vstor\\Parameters\\Device0]\n"));
    assert!(dump.contains("  \"Targets\" = REG_MULTI_SZ [\"t0\", \"t1\"]\n"));
    assert_eq!(dump, installed().0.to_string());
}

fn install_text(
    text: &str,
    options: &InstallOptions,
) -> (Registry, Result<storport_emu::inf::Installed, InstallError>) {
    let inf = Inf::parse(text).unwrap_or_else(|e| panic!("{e}"));
    let mut reg = Registry::new();
    let result = install(&inf, &mut reg, options);
    (reg, result)
}

/// A minimal undecorated INF with two models and HKLM lines.
const PLAIN_INF: &str = r"
[Manufacturer]
Acme = Models

[Models]
First = First_Inst, root\first
Second = Second_Inst, root\second, compat\second

[First_Inst]
[First_Inst.Services]
AddService = first, 2, First_Svc

[Second_Inst]
[Second_Inst.Services]
AddService = helper, 0, Helper_Svc
AddService = second, 0x2, Second_Svc

[First_Svc]
ServiceType = 1
StartType = 0
ErrorControl = 1
ServiceBinary = %12%\first.sys
Dependencies = dep1, +Group A

[Helper_Svc]
ServiceType = 1
StartType = 3
ErrorControl = 1
ServiceBinary = %12%\helper.sys

[Second_Svc]
ServiceType = 1
StartType = 3
ErrorControl = 1
ServiceBinary = %12%\second.sys
AddReg = Second_Reg
DelReg = Second_Del

[Second_Reg]
HKLM, System\CurrentControlSet\Services\second\Parameters, Abs, 0x00010001, 5
HKLM, Software\Acme, X, , y
HKR, Parameters, Keep, 0x00010001, 1
HKR, Parameters, Keep, 0x00010003, 2
HKR, Parameters, Only, 0x00010021, 3
HKR, Parameters, List, 0x00010000, a, b
HKR, Parameters, List, 0x00010008, B, c
HKR, Parameters, Gone, 0x00010001, 1
HKR, Parameters, Gone, 0x00000004
HKR, Parameters, AsBytes, 0x00010001, 01, 02, 00, 00
HKR, Parameters, Custom, 0x00380001, 1, 2
HKR, Parameters, Nothing, 0x00020001
HKR, Parameters, DefaultSz
HKR, Parameters, Neg, 0x00010001, 0xFFFFFFFF
HKR, Parameters\Doomed, V, 0x00010001, 1

[Second_Del]
HKR, Parameters\Doomed
";

#[test]
fn first_model_by_default_and_hardware_id_selection() {
    let (reg, done) = install_text(PLAIN_INF, &InstallOptions::default());
    let done = done.unwrap();
    assert_eq!(
        (done.service.as_str(), done.models_section.as_str()),
        ("first", "Models")
    );
    assert_eq!(
        reg.value("Services\\first", "Start"),
        Some(&RegValue::dword(0))
    );
    assert_eq!(
        reg.value("Services\\first", "DependOnService"),
        Some(&RegValue::multi_sz(&["dep1"]))
    );
    assert_eq!(
        reg.value("Services\\first", "DependOnGroup"),
        Some(&RegValue::multi_sz(&["Group A"]))
    );
    assert!(!reg.key_exists("Services\\second"));

    let by_compat = InstallOptions {
        hardware_id: Some("COMPAT\\SECOND".to_owned()),
    };
    let (_, done) = install_text(PLAIN_INF, &by_compat);
    let done = done.unwrap();
    assert_eq!(done.service, "second");
    assert_eq!(done.services, ["helper", "second"]);
    assert_eq!(done.hardware_id, "root\\second");

    let missing = InstallOptions {
        hardware_id: Some("root\\nope".to_owned()),
    };
    let (_, err) = install_text(PLAIN_INF, &missing);
    assert_eq!(
        err.unwrap_err().to_string(),
        "no model entry in the INF has hardware id `root\\nope`; the INF offers: root\\first, root\\second"
    );
}

#[test]
fn addreg_flags_and_roots() {
    let options = InstallOptions {
        hardware_id: Some("root\\second".to_owned()),
    };
    let (reg, done) = install_text(PLAIN_INF, &options);
    let done = done.unwrap();
    let p = "Services\\second\\Parameters";
    assert_eq!(reg.value(p, "Abs"), Some(&RegValue::dword(5)));
    assert_eq!(done.notes.len(), 1);
    assert!(
        done.notes[0].contains("HKLM\\Software\\Acme"),
        "{:?}",
        done.notes
    );
    assert_eq!(
        reg.value(p, "Keep"),
        Some(&RegValue::dword(1)),
        "NOCLOBBER keeps the first value"
    );
    assert_eq!(reg.value(p, "Only"), None, "OVERWRITEONLY does not create");
    assert_eq!(
        reg.value(p, "List"),
        Some(&RegValue::multi_sz(&["a", "b", "c"]))
    );
    assert_eq!(reg.value(p, "Gone"), None);
    assert_eq!(reg.value(p, "AsBytes"), Some(&RegValue::dword(0x0201)));
    assert_eq!(reg.raw(p, "Custom"), Some((RegType(0x38), &[1u8, 2][..])));
    assert_eq!(reg.raw(p, "Nothing"), Some((RegType::NONE, &[][..])));
    assert_eq!(
        reg.value(p, "DefaultSz"),
        Some(&RegValue::sz("")),
        "a name without a value is an empty string"
    );
    assert_eq!(reg.value(p, "Neg"), Some(&RegValue::dword(u32::MAX)));
    assert!(!reg.key_exists("Services\\second\\Parameters\\Doomed"));
    assert_eq!(
        reg.value("Services\\helper", "ImagePath"),
        Some(&RegValue::expand_sz(
            "\\SystemRoot\\System32\\drivers\\helper.sys"
        ))
    );
}

fn install_error(text: &str) -> String {
    install_text(text, &InstallOptions::default())
        .1
        .unwrap_err()
        .to_string()
}

const HEAD: &str = "[Manufacturer]\nM = Models\n[Models]\nD = Inst, root\\x\n[Inst]\n[Inst.Services]\nAddService = x, 2, Svc\n";

#[test]
fn install_errors_name_the_place_and_the_expectation() {
    assert!(install_error("[Version]\n").starts_with("the INF has no [Manufacturer] section"));
    assert_eq!(
        install_error("[Manufacturer]\nM = Models\n"),
        "INF line 2 in [Manufacturer] refers to section [Models], which the INF does not have; expected that section to exist"
    );
    assert!(install_error("[Manufacturer]\nM = Models, NTarm64\n[Models.NTarm64]\n")
        .starts_with("INF line 2 in [Manufacturer]: none of the target decorations `NTarm64` fits x64 Windows 10.0"));
    assert_eq!(
        install_error("[Manufacturer]\nM = Models\n[Models]\nD = Inst, root\\x\n[Inst]\n"),
        "[Inst.Services] has no `AddService` entry with a service name; expected `AddService = name, 0x00000002, service-install-section`, so no driver would be loaded"
    );
    assert_eq!(
        install_error(&format!(
            "{HEAD}[Svc]\nServiceType=1\nStartType=3\nServiceBinary=x.sys\n"
        )),
        "[Svc] has no `ErrorControl` entry; expected `ErrorControl = ...`, which every service-install section needs"
    );
    assert_eq!(
        install_error(&format!(
            "{HEAD}[Svc]\nServiceType=one\nStartType=3\nErrorControl=1\nServiceBinary=x.sys\n"
        )),
        "INF line 9 in [Svc]: `one` is not a number; expected `ServiceType = ` a decimal or 0x-prefixed hex number"
    );
    let svc =
        "[Svc]\nServiceType=1\nStartType=3\nErrorControl=1\nServiceBinary=x.sys\nAddReg=R\n[R]\n";
    assert_eq!(
        install_error(&format!("{HEAD}{svc}HKR,,V,0x00010001,x\n")),
        "INF line 15 in [R]: `x` is not a DWORD; expected a decimal or 0x-prefixed hex number up to 4294967295"
    );
    assert!(
        install_error(&format!("{HEAD}{svc}HKXX,,V,,x\n"))
            .contains("`HKXX` is not a registry root")
    );
    assert!(
        install_error(&format!("{HEAD}{svc}HKR,,V,0x00000040,x\n"))
            .contains("bits 0x40 that are not FLG_ADDREG_* values")
    );
    assert!(
        install_error(&format!("{HEAD}{svc}HKR,,V,0x00000001,zz\n")).contains("`zz` is not a byte")
    );
    assert!(
        install_error(&format!("{HEAD}{svc}HKR,,V,0x00010001,1,2\n"))
            .contains("expected exactly 4")
    );
    assert!(
        install_error(&format!("{HEAD}{svc}HKR,,V,0x00000008,x\n")).contains("FLG_ADDREG_APPEND")
    );
    assert!(
        install_error(&format!("{HEAD}{svc}HKR,,V,0x00030000,x\n")).contains("name no string type")
    );
    assert!(install_error(&format!("{HEAD}[Svc]\nServiceType=1\nStartType=3\nErrorControl=1\nServiceBinary=x.sys\nAddReg=Nope\n"))
        .contains("refers to section [Nope]"));
}

#[test]
fn default_install_without_inf() {
    let name = service_name_for_image(std::path::Path::new("/tmp/build/vstor.sys"));
    assert_eq!(name, "vstor");
    let mut reg = Registry::new();
    install_default(&name, &mut reg);
    assert_eq!(reg.value(SVC, "Type"), Some(&RegValue::dword(1)));
    assert_eq!(reg.value(SVC, "Start"), Some(&RegValue::dword(3)));
    assert_eq!(
        reg.value(SVC, "ImagePath"),
        Some(&RegValue::expand_sz(
            "\\SystemRoot\\System32\\drivers\\vstor.sys"
        ))
    );
    assert!(reg.key_exists(DEVICE));
    assert_eq!(reg.values(DEVICE).map(|v| v.len()), Some(0));
}

mod never_panics {
    use proptest::prelude::*;
    use storport_emu::inf::{Inf, InstallOptions, install};
    use storport_emu::registry::Registry;

    const LINES: &[&str] = &[
        "[Version]",
        "ClassGuid = {4d36e97b-e325-11ce-bfc1-08002be10318}",
        "[Manufacturer]",
        "M = Models",
        "M = Models, NTamd64, NTx86",
        "M = Models, NTamd64.10.0...99999",
        "[Models]",
        "[Models.NTamd64]",
        "D = Inst, root\\x",
        "D = Inst",
        "[Inst]",
        "[Inst.NT]",
        "[Inst.Services]",
        "[Inst.NT.Services]",
        "[Inst.NT.HW]",
        "AddService = x, 2, Svc",
        "AddService = x, 0x2, Svc, Log, Application, Ev",
        "AddService = , 2",
        "[Svc]",
        "ServiceType = 1",
        "StartType = 3",
        "ErrorControl = 0x1",
        "ServiceBinary = %12%\\x.sys",
        "Dependencies = +",
        "AddReg = R, , R",
        "DelReg = R",
        "Include = machine.inf",
        "[R]",
        "[Log]",
        "AddReg = R",
        "HKR,,V,0x00010001,5",
        "HKR,P,V,0x000B0001,1,2",
        "HKR,P,V,0x000B0001,",
        "HKR,,V,0x00010008,a",
        "HKR,,V,0x00010000",
        "HKLM,System\\CurrentControlSet,V,,x",
        "HKLM,System\\CurrentControlSetX,V,,x",
        "HKR,,,0x4",
        "HKR,,V,0xFFFFFFFF,1",
        "HKR,,V,0x00000001,0x1ff",
        "HKR,\\\\,,0x10",
    ];

    proptest! {
        #[test]
        fn install_never_panics(picks in proptest::collection::vec(0..LINES.len(), 0..40), id in proptest::option::of(Just("root\\x".to_owned()))) {
            let text = picks.iter().map(|&i| LINES[i]).collect::<Vec<_>>().join("\n");
            if let Ok(inf) = Inf::parse(&text) {
                let mut reg = Registry::new();
                let _ = install(&inf, &mut reg, &InstallOptions { hardware_id: id });
                let _ = reg.to_string();
            }
        }
    }
}

/// The repository's own INF installs as a root-enumerated virtual Storport
/// miniport: a kernel driver service (`ServiceType` 1, `ErrorControl` 1) in
/// the "SCSI Miniport" load order group, with `BusType` 0xE (`BusTypeVirtual`
/// of `STORAGE_BUS_TYPE`) under the service's `Parameters` key (Microsoft
/// Learn, "INF `AddService` Directive", "`STORAGE_BUS_TYPE` enumeration
/// (ntddstor.h)", and the Windows driver samples' storage miniport INFs).
#[test]
fn repository_inf_installs() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../inf/vstor.inf");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let inf = Inf::from_bytes(&bytes).unwrap_or_else(|e| panic!("{e}"));
    let mut reg = Registry::new();
    let done = install(
        &inf,
        &mut reg,
        &InstallOptions {
            hardware_id: Some("root\\vstor".to_owned()),
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(done.service, "vstor");
    assert_eq!(reg.value(SVC, "Type"), Some(&RegValue::dword(1)));
    assert_eq!(reg.value(SVC, "ErrorControl"), Some(&RegValue::dword(1)));
    assert_eq!(
        reg.value(SVC, "Group"),
        Some(&RegValue::sz("SCSI Miniport"))
    );
    assert_eq!(
        reg.value("Services\\vstor\\Parameters", "BusType"),
        Some(&RegValue::dword(0xE))
    );
    assert!(reg.key_exists(DEVICE));
    assert!(done.notes.is_empty(), "{:?}", done.notes);
}
