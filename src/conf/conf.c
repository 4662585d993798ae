/*
 * The configuration document: loading (file or string) with error reports that name the
 * file and line, XPath lookups from sections, the typed getters, and the <logs> section.
 *
 * One document is loaded at a time. A section is a bare xmlNodePtr; MTEV_CONF_ROOT is a
 * sentinel that means "the document". Value lookups on relative paths inherit: they are run
 * as "ancestor-or-self::node()/PATH" and the match nearest to the section wins.
 */
#include <mtev_conf.h>
#include <mtev_log.h>

#include <errno.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xpath.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const int parse_options = XML_PARSE_NONET;

static char root_sentinel;
const mtev_conf_section_t MTEV_CONF_ROOT = {&root_sentinel};
const mtev_conf_section_t MTEV_CONF_EMPTY = {NULL};

static xmlDocPtr loaded_document;
static char *expected_toplevel;

void mtev_conf_init(const char *toplevel)
{
    free(expected_toplevel);
    expected_toplevel = toplevel ? strdup(toplevel) : NULL;
}

mtev_boolean mtev_conf_is_loaded(void)
{
    return loaded_document ? mtev_true : mtev_false;
}

static int install_document(const char *label, xmlDocPtr document)
{
    xmlNodePtr root = xmlDocGetRootElement(document);
    if (!root) {
        mtevL(mtev_error, "mtev_conf_load: %s:1: document has no root element\n", label);
        xmlFreeDoc(document);
        return -1;
    }
    if (expected_toplevel && strcmp((const char *)root->name, expected_toplevel) != 0) {
        mtevL(mtev_error, "mtev_conf_load: %s:%ld: root element <%s> is not <%s>\n", label,
              xmlGetLineNo(root), (const char *)root->name, expected_toplevel);
        xmlFreeDoc(document);
        return -1;
    }
    if (loaded_document)
        xmlFreeDoc(loaded_document);
    loaded_document = document;
    return 0;
}

/* The first error libxml2 reports while parsing; later ones are usually consequences. */
struct first_error {
    int seen;
    int line;
    char message[256];
};

static void remember_first_error(void *closure, xmlErrorPtr error)
{
    struct first_error *first = closure;
    if (first->seen || !error || error->level < XML_ERR_ERROR)
        return;
    first->seen = 1;
    first->line = error->line;
    snprintf(first->message, sizeof(first->message), "%s",
             error->message ? error->message : "parse error");
    size_t length = strlen(first->message);
    while (length > 0 && (first->message[length - 1] == '\n' || first->message[length - 1] == ' '))
        first->message[--length] = '\0';
}

static void report_parse_error(const char *label, const struct first_error *first)
{
    if (first->seen)
        mtevL(mtev_error, "mtev_conf_load: %s:%d: %s\n", label, first->line, first->message);
    else
        mtevL(mtev_error, "mtev_conf_load: %s:0: cannot parse\n", label);
}

/* Parses a file (xml == NULL) or a string, catching libxml2's first error. */
static xmlDocPtr parse_document(const char *label, const char *path, const char *xml)
{
    xmlParserCtxtPtr context = xmlNewParserCtxt();
    if (!context) {
        mtevL(mtev_error, "mtev_conf_load: %s:0: out of memory\n", label);
        return NULL;
    }
    struct first_error first = {0};
    /* libxml2 keeps this handler per thread; restore the caller's afterwards. */
    void *saved_closure = xmlStructuredErrorContext;
    xmlStructuredErrorFunc saved_handler = xmlStructuredError;
    xmlSetStructuredErrorFunc(&first, remember_first_error);
    xmlDocPtr document =
        xml ? xmlCtxtReadMemory(context, xml, (int)strlen(xml), label, NULL, parse_options)
            : xmlCtxtReadFile(context, path, NULL, parse_options);
    xmlSetStructuredErrorFunc(saved_closure, saved_handler);
    if (!document)
        report_parse_error(label, &first);
    xmlFreeParserCtxt(context);
    return document;
}


int mtev_conf_load(const char *path)
{
    if (!path) {
        mtevL(mtev_error, "mtev_conf_load: no file name given\n");
        return -1;
    }
    FILE *probe = fopen(path, "r");
    if (!probe) {
        mtevL(mtev_error, "mtev_conf_load: %s:0: cannot open: %s\n", path, strerror(errno));
        return -1;
    }
    fclose(probe);
    xmlDocPtr document = parse_document(path, path, NULL);
    return document ? install_document(path, document) : -1;
}

int mtev_conf_load_string(const char *label, const char *xml)
{
    if (!label)
        label = "<string>";
    if (!xml) {
        mtevL(mtev_error, "mtev_conf_load: %s:0: no text given\n", label);
        return -1;
    }
    xmlDocPtr document = parse_document(label, NULL, xml);
    return document ? install_document(label, document) : -1;
}

void mtev_conf_unload(void)
{
    if (loaded_document)
        xmlFreeDoc(loaded_document);
    loaded_document = NULL;
    free(expected_toplevel);
    expected_toplevel = NULL;
}

mtev_boolean mtev_conf_section_is_empty(mtev_conf_section_t section)
{
    return section.opaque1 == NULL ? mtev_true : mtev_false;
}

void *mtev_conf_section_to_xmlnodeptr(mtev_conf_section_t section)
{
    if (section.opaque1 == &root_sentinel)
        return loaded_document ? xmlDocGetRootElement(loaded_document) : NULL;
    return section.opaque1;
}

/* The node XPath starts from: the document for MTEV_CONF_ROOT. */
static xmlNodePtr context_node(mtev_conf_section_t section)
{
    if (!loaded_document || !section.opaque1)
        return NULL;
    if (section.opaque1 == &root_sentinel)
        return (xmlNodePtr)loaded_document;
    return section.opaque1;
}

/* Evaluates `path` from `node`; the caller frees the result with xmlXPathFreeObject(). */
static xmlXPathObjectPtr evaluate(xmlNodePtr node, const char *path)
{
    if (!node || !path)
        return NULL;
    xmlXPathContextPtr context = xmlXPathNewContext(loaded_document);
    if (!context)
        return NULL;
    context->node = node;
    xmlXPathObjectPtr result = xmlXPathEvalExpression((const xmlChar *)path, context);
    xmlXPathFreeContext(context);
    if (result &&
        (result->type != XPATH_NODESET || !result->nodesetval || result->nodesetval->nodeNr == 0)) {
        xmlXPathFreeObject(result);
        return NULL;
    }
    return result;
}

mtev_conf_section_t mtev_conf_get_section_read(mtev_conf_section_t base, const char *path)
{
    mtev_conf_section_t section = MTEV_CONF_EMPTY;
    xmlXPathObjectPtr result = evaluate(context_node(base), path);
    if (result) {
        section.opaque1 = result->nodesetval->nodeTab[0];
        xmlXPathFreeObject(result);
    }
    return section;
}

void mtev_conf_release_section_read(mtev_conf_section_t section)
{
    (void)section;
}

mtev_conf_section_t mtev_conf_get_section(mtev_conf_section_t base, const char *path)
{
    return mtev_conf_get_section_read(base, path);
}

mtev_conf_section_t *mtev_conf_get_sections_read(mtev_conf_section_t base, const char *path,
                                                 int *count)
{
    *count = 0;
    xmlXPathObjectPtr result = evaluate(context_node(base), path);
    if (!result)
        return NULL;
    int found = result->nodesetval->nodeNr;
    mtev_conf_section_t *sections = calloc((size_t)found, sizeof(*sections));
    if (sections) {
        for (int i = 0; i < found; i++)
            sections[i].opaque1 = result->nodesetval->nodeTab[i];
        *count = found;
    }
    xmlXPathFreeObject(result);
    return sections;
}

void mtev_conf_release_sections_read(mtev_conf_section_t *sections, int count)
{
    (void)count;
    free(sections);
}

mtev_conf_section_t *mtev_conf_get_sections(mtev_conf_section_t base, const char *path, int *count)
{
    return mtev_conf_get_sections_read(base, path, count);
}

/*
 * Finds the node holding the value at `path`. Relative paths from a real section inherit: a
 * bare name also matches an attribute of that name.
 */
static xmlNodePtr find_value_node(mtev_conf_section_t section, const char *path)
{
    xmlNodePtr node = context_node(section);
    if (!node || !path || !*path)
        return NULL;
    if (path[0] == '/' || node == (xmlNodePtr)loaded_document) {
        xmlXPathObjectPtr result = evaluate(node, path);
        if (!result)
            return NULL;
        xmlNodePtr found = result->nodesetval->nodeTab[0];
        xmlXPathFreeObject(result);
        return found;
    }
    /* Walk from the section up: the nearest definition wins. */
    int bare_name = strpbrk(path, "/@[(*:.") == NULL;
    size_t expression_size = 2 * strlen(path) + 16;
    char *attribute_path = malloc(expression_size);
    if (!attribute_path)
        return NULL;
    snprintf(attribute_path, expression_size, "@%s", path);
    xmlNodePtr found = NULL;
    for (xmlNodePtr at = node; at && at->type == XML_ELEMENT_NODE && !found; at = at->parent) {
        xmlXPathObjectPtr result = NULL;
        if (bare_name)
            result = evaluate(at, attribute_path);
        if (!result)
            result = evaluate(at, path);
        if (result) {
            found = result->nodesetval->nodeTab[0];
            xmlXPathFreeObject(result);
        }
    }
    free(attribute_path);
    return found;
}

int mtev_conf_get_string(mtev_conf_section_t section, const char *path, char **value)
{
    xmlNodePtr node = find_value_node(section, path);
    if (!node)
        return 0;
    xmlChar *content = xmlNodeGetContent(node);
    if (!content)
        return 0;
    char *copy = strdup((const char *)content);
    xmlFree(content);
    if (!copy)
        return 0;
    *value = copy;
    return 1;
}

int mtev_conf_get_stringbuf(mtev_conf_section_t section, const char *path, char *buffer,
                            int capacity)
{
    char *value = NULL;
    if (capacity <= 0 || !mtev_conf_get_string(section, path, &value))
        return 0;
    snprintf(buffer, (size_t)capacity, "%s", value);
    free(value);
    return 1;
}

static void report_bad_value(const char *path, const char *value, const char *expected)
{
    mtevL(mtev_error, "mtev_conf: value \"%s\" at %s is not %s\n", value, path, expected);
}

int mtev_conf_get_int64(mtev_conf_section_t section, const char *path, int64_t *value)
{
    char *text = NULL;
    if (!mtev_conf_get_string(section, path, &text))
        return 0;
    char *end = NULL;
    errno = 0;
    long long parsed = strtoll(text, &end, 0);
    int ok = end != text && errno == 0;
    while (ok && *end == ' ')
        end++;
    ok = ok && *end == '\0';
    if (ok)
        *value = parsed;
    else
        report_bad_value(path, text, "an integer");
    free(text);
    return ok;
}

int mtev_conf_get_int32(mtev_conf_section_t section, const char *path, int32_t *value)
{
    int64_t wide = 0;
    if (!mtev_conf_get_int64(section, path, &wide))
        return 0;
    if (wide < INT32_MIN || wide > INT32_MAX) {
        mtevL(mtev_error, "mtev_conf: value %lld at %s is out of range\n", (long long)wide, path);
        return 0;
    }
    *value = (int32_t)wide;
    return 1;
}

int mtev_conf_get_uint32(mtev_conf_section_t section, const char *path, uint32_t *value)
{
    int64_t wide = 0;
    if (!mtev_conf_get_int64(section, path, &wide))
        return 0;
    if (wide < 0 || wide > UINT32_MAX) {
        mtevL(mtev_error, "mtev_conf: value %lld at %s is out of range\n", (long long)wide, path);
        return 0;
    }
    *value = (uint32_t)wide;
    return 1;
}

int mtev_conf_get_double(mtev_conf_section_t section, const char *path, double *value)
{
    char *text = NULL;
    if (!mtev_conf_get_string(section, path, &text))
        return 0;
    char *end = NULL;
    double parsed = strtod(text, &end);
    int ok = end != text && *end == '\0';
    if (ok)
        *value = parsed;
    else
        report_bad_value(path, text, "a number");
    free(text);
    return ok;
}

/* Returns 1 (true), 0 (false) or -1 (not a boolean). */
static int parse_boolean(const char *text)
{
    static const char *const yes[] = {"true", "on", "yes", "1"};
    static const char *const no[] = {"false", "off", "no", "0"};
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        if (!strcasecmp(text, yes[i]))
            return 1;
        if (!strcasecmp(text, no[i]))
            return 0;
    }
    return -1;
}

int mtev_conf_get_boolean(mtev_conf_section_t section, const char *path, mtev_boolean *value)
{
    char *text = NULL;
    if (!mtev_conf_get_string(section, path, &text))
        return 0;
    int parsed = parse_boolean(text);
    if (parsed < 0)
        report_bad_value(path, text, "a boolean");
    else
        *value = parsed ? mtev_true : mtev_false;
    free(text);
    return parsed >= 0;
}

int mtev_conf_foreach_pair(mtev_conf_section_t section, const char *path,
                           void (*visit)(const char *key, const char *value, void *closure),
                           void *closure)
{
    xmlNodePtr node = context_node(section);
    if (!node || !path || !visit)
        return 0;
    if (node == (xmlNodePtr)loaded_document)
        node = xmlDocGetRootElement(loaded_document);
    /* Collect the chain so the outermost ancestor is visited first. */
    xmlNodePtr chain[64];
    int depth = 0;
    for (xmlNodePtr at = node; at && at->type == XML_ELEMENT_NODE && depth < 64; at = at->parent)
        chain[depth++] = at;
    int visited = 0;
    while (depth-- > 0) {
        xmlXPathObjectPtr result = evaluate(chain[depth], path);
        if (!result)
            continue;
        for (int i = 0; i < result->nodesetval->nodeNr; i++) {
            for (xmlNodePtr child = result->nodesetval->nodeTab[i]->children; child;
                 child = child->next) {
                if (child->type != XML_ELEMENT_NODE)
                    continue;
                xmlChar *content = xmlNodeGetContent(child);
                visit((const char *)child->name, content ? (const char *)content : "", closure);
                xmlFree(content);
                visited++;
            }
        }
        xmlXPathFreeObject(result);
    }
    return visited;
}

int mtev_conf_section_name(mtev_conf_section_t section, char *buffer, size_t capacity)
{
    xmlNodePtr node = mtev_conf_section_to_xmlnodeptr(section);
    if (!node || capacity == 0)
        return 0;
    snprintf(buffer, capacity, "%s", (const char *)node->name);
    return 1;
}

int mtev_conf_log_init(const char *toplevel)
{
    (void)toplevel;
    int count = 0;
    mtev_conf_section_t *logs = mtev_conf_get_sections_read(MTEV_CONF_ROOT, "//logs//log", &count);
    int configured = 0;
    for (int i = 0; i < count; i++) {
        xmlNodePtr node = logs[i].opaque1;
        xmlChar *name = xmlGetProp(node, (const xmlChar *)"name");
        xmlChar *disabled = xmlGetProp(node, (const xmlChar *)"disabled");
        if (name) {
            mtev_log_stream_t stream = mtev_log_stream_find((const char *)name);
            int off = disabled ? parse_boolean((const char *)disabled) : 0;
            if (off < 0) {
                mtevL(mtev_error, "mtev_conf: line %ld: log %s: disabled=\"%s\" is not a boolean\n",
                      xmlGetLineNo(node), (const char *)name, (const char *)disabled);
            } else {
                mtev_log_stream_enable(stream, off ? mtev_false : mtev_true);
                configured++;
            }
        }
        xmlFree(name);
        xmlFree(disabled);
    }
    mtev_conf_release_sections_read(logs, count);
    return configured;
}
