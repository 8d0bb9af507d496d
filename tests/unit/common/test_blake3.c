/* test_blake3.c - the BLAKE3 build against the upstream test vectors */
#include <blake3.h>
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

static void hex(const uint8_t *in, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", in[i]);
}

Test(blake3, matches_upstream_vectors)
{
    json_error_t err;
    json_t *doc = json_load_file(AEI_BLAKE3_VECTORS, 0, &err);
    cr_assert_not_null(doc, "cannot read %s: %s", AEI_BLAKE3_VECTORS, err.text);
    const char *key = json_string_value(json_object_get(doc, "key"));
    const char *context = json_string_value(json_object_get(doc, "context_string"));
    cr_assert_eq(strlen(key), BLAKE3_KEY_LEN);
    size_t i;
    json_t *c;
    size_t checked = 0;
    json_array_foreach(json_object_get(doc, "cases"), i, c)
    {
        size_t len = (size_t)json_integer_value(json_object_get(c, "input_len"));
        uint8_t *input = malloc(len ? len : 1);
        for (size_t k = 0; k < len; k++)
            input[k] = (uint8_t)(k % 251);
        const char *modes[] = {"hash", "keyed_hash", "derive_key"};
        for (int m = 0; m < 3; m++) {
            const char *want = json_string_value(json_object_get(c, modes[m]));
            size_t outlen = strlen(want) / 2;
            uint8_t out[256];
            char got[513];
            blake3_hasher h;
            if (m == 0)
                blake3_hasher_init(&h);
            else if (m == 1)
                blake3_hasher_init_keyed(&h, (const uint8_t *)key);
            else
                blake3_hasher_init_derive_key(&h, context);
            blake3_hasher_update(&h, input, len);
            blake3_hasher_finalize(&h, out, outlen);
            hex(out, outlen, got);
            cr_assert_str_eq(got, want, "%s of %zu bytes", modes[m], len);
            /* The default length is a prefix of the extended output. */
            blake3_hasher_finalize(&h, out, BLAKE3_OUT_LEN);
            hex(out, BLAKE3_OUT_LEN, got);
            cr_assert(strncmp(got, want, 2 * BLAKE3_OUT_LEN) == 0);
            checked++;
        }
        free(input);
    }
    cr_assert_gt(checked, 60, "too few vectors: %zu", checked);
    json_decref(doc);
}
