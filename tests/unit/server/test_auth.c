/* test_auth.c - bearer token checks */
#include "server/auth.h"

#include <criterion/criterion.h>

Test(auth, accepts_only_the_configured_bearer_token)
{
    struct auth a;
    auth_init(&a, "s3cret-token-value");
    cr_assert_eq(auth_check(&a, "Bearer s3cret-token-value"), AUTH_OK);
    cr_assert_eq(auth_check(&a, "bearer  s3cret-token-value "), AUTH_OK, "scheme is case-blind");
    cr_assert_eq(auth_check(&a, "Bearer s3cret-token-valuf"), AUTH_INVALID);
    cr_assert_eq(auth_check(&a, "Bearer s3cret-token-value2"), AUTH_INVALID);
    cr_assert_eq(auth_check(&a, "Bearer "), AUTH_INVALID);
    cr_assert_eq(auth_check(&a, NULL), AUTH_MISSING);
    cr_assert_eq(auth_check(&a, "Basic czNjcmV0"), AUTH_MISSING);
    cr_assert_eq(auth_check(&a, "s3cret-token-value"), AUTH_MISSING);
}
