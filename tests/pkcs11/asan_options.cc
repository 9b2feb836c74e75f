// Default sanitizer options of pkcs11_vanish_asan_test: libp11 and SoftHSM
// keep some allocations until exit (LeakSanitizer would fail the run for
// them); use-after-free and other memory errors still abort the test.
extern "C" const char* __asan_default_options() { return "detect_leaks=0"; }
