/* test_export.c - how one decision is written into an export: Markdown escaping and layout, and
 * the JSON that POST /api/v0/traces takes back */
#include "aei/error.h"
#include "server/export.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

static char *inline_md(const char *s, bool cell)
{
    struct buf b = {0};
    export_md_inline(&b, s, cell);
    return b.data ? b.data : strdup("");
}

Test(export, markdown_inline_text_renders_as_itself)
{
    char *t = inline_md("a|b `c` <script> *d* _e_ [f](g) #h & ~i~ \\", false);
    cr_assert_str_eq(
        t, "a\\|b \\`c\\` \\<script\\> \\*d\\* \\_e\\_ \\[f\\]\\(g\\) \\#h \\& \\~i\\~ \\\\");
    free(t);
}

Test(export, markdown_line_breaks_stay_inside_a_cell)
{
    char *t = inline_md("one\r\ntwo\nthree\tfour", true);
    cr_assert_str_eq(t, "one<br>two<br>three four");
    free(t);
    t = inline_md("one\ntwo", false);
    cr_assert_str_eq(t, "one two");
    free(t);
}

static struct decision sample(int depth)
{
    struct decision d = {.depth = depth, .has_confidence = true, .confidence = 75};
    strcpy(d.decision_id, "d-1");
    strcpy(d.execution_id, "run-1");
    strcpy(d.agent_id, "a-1");
    strcpy(d.parent_id, depth > 0 ? "d-0" : "");
    d.path = depth >= 0 ? strdup("0000000000000001") : NULL;
    d.kind = strdup("llm_call");
    d.outcome = strdup("go | stop\nnow");
    d.context_json = strdup("\"- not a list\\n1. nor this\\n```\"");
    d.alternatives_json =
        strdup("[{\"option\":\"x|y\",\"reason_rejected\":\"a\\nb\",\"score\":0.5},"
               "{\"option\":\"z\"}]");
    d.labels_json = strdup("{}");
    return d;
}

Test(export, markdown_decision_nests_by_depth_with_reasoning_and_alternatives)
{
    struct decision d = sample(2);
    struct buf b = {0};
    export_render_decision(&b, EXPORT_MARKDOWN, &d, true);
    const char *want = "    - **llm\\_call** → go \\| stop now · confidence 75 · `d-1`\n\n"
                       "      <details><summary>Reasoning (28 characters)</summary>\n\n"
                       "      > \\- not a list\\\n"
                       "      > 1\\. nor this\\\n"
                       "      > \\`\\`\\`\n\n"
                       "      </details>\n\n"
                       "      | Option | Score | Why rejected |\n"
                       "      | --- | ---: | --- |\n"
                       "      | x\\|y | 0.5 | a<br>b |\n"
                       "      | z | — | — |\n\n";
    cr_assert_str_eq(b.data, want);
    buf_free(&b);
    decision_clear(&d);
}

Test(export, markdown_caps_the_nesting_and_says_the_depth)
{
    struct decision d = sample(EXPORT_MD_LEVELS + 3);
    struct buf b = {0};
    export_render_decision(&b, EXPORT_MARKDOWN, &d, true);
    char want[128];
    snprintf(want, sizeof(want), "%*s- [depth %d, under `d-0`] **llm", 2 * (EXPORT_MD_LEVELS - 1),
             "", EXPORT_MD_LEVELS + 3);
    cr_assert(strncmp(b.data, want, strlen(want)) == 0, "got %.80s", b.data);
    buf_free(&b);
    decision_clear(&d);
}

Test(export, json_decision_posts_back_unchanged)
{
    struct decision d = sample(-1); /* waiting for its parent */
    strcpy(d.parent_id, "gone");
    d.has_agent_ts = true;
    d.agent_ts = 1000000;
    struct buf b = {0};
    export_render_decision(&b, EXPORT_JSON, &d, true);
    cr_assert_eq(b.data[0], '\n');
    json_t *v = json_loads(b.data + 1, 0, NULL);
    cr_assert_not_null(v);
    cr_assert(json_is_null(json_object_get(v, "depth")), "a waiting decision has depth null");
    struct decision back;
    struct problem pb;
    cr_assert_eq(decision_from_json(v, -1, &back, &pb), 0, "%s: %s", pb.field, pb.message);
    cr_assert(back.has_agent_ts && back.agent_ts == 1000000, "agent_ts wins over timestamp");
    cr_assert_str_eq(back.parent_id, "gone");
    cr_assert_str_eq(back.outcome, d.outcome);
    json_decref(v);
    decision_clear(&back);
    buf_free(&b);
    decision_clear(&d);
}

Test(export, format_names)
{
    enum export_format f;
    cr_assert(export_format_parse("markdown", &f) && f == EXPORT_MARKDOWN);
    cr_assert(export_format_parse("json", &f) && f == EXPORT_JSON);
    cr_assert(!export_format_parse("JSON", &f));
    cr_assert(!export_format_parse("", &f));
}
