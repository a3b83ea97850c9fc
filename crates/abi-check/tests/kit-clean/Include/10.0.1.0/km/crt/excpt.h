/* Test header written for vstor-abi-check: stands for the compiler header
   the kit keeps in km/crt (the check must search there). */
#define VSTOR_TEST_CRT_SEEN 1
