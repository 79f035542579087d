// Preloaded into ext_authbypass_acl by sighup_test.py (case before_main): sends the
// process SIGHUP from a library constructor, while the dynamic loader initialises the
// libraries and before main(): where a logrotate postrotate's signal lands when Squid has
// only just started a helper.
#include <signal.h>
#include <unistd.h>

__attribute__((constructor)) static void hup_at_load() {
  for (int i = 0; i < 3; ++i) ::kill(::getpid(), SIGHUP);
}
