"""lab: throw-away Squid, c-icap and origin servers on loopback for the Python tests,
demos and benchmarks under tests/. Standard library only; run with /usr/bin/python3.

    from lab.squid import SquidLab       # Squid 5.7 + ext_authbypass_acl + an origin
    from lab.cicap import CIcap          # c-icap 0.5.10 serving srv_authbypass.so
    from lab.origin import OriginServer  # the loopback origin SquidLab starts
    from lab.ports import free_port
    from lab.checks import Checks        # the pass/fail tally test scripts exit on
    from lab import scenarios, testdata  # Squid request cases; CA, CRLs, impostors

The package is found through PYTHONPATH=<source>/tests: ctest sets it for every test
(tests/CMakeLists.txt), and tests/bench/run-all, the bench scripts and scripts/demo set
it for the scripts they start. To run a test script by hand:

    PYTHONPATH=tests /usr/bin/python3 tests/icap/icap_service_test.py ...

Nothing but 127.0.0.1 is contacted; every process a lab starts is stopped by PID.
"""
