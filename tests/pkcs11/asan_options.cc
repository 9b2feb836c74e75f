// Default sanitizer options of pkcs11_vanish_asan_test and of
// pkcs11_exit_helper: libp11 and SoftHSM keep some allocations until exit,
// and the helper leaves its store open on purpose (LeakSanitizer would fail
// the run for them); use-after-free and other memory errors still abort.
extern "C" const char* __asan_default_options() { return "detect_leaks=0"; }
