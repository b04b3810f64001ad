// The shell of microflows' own small HTML pages (unsubscribe, preference center, codec login): no scripts, the style
// inline (the strict CSP allows inline styles only), nothing loaded from elsewhere, kept out of search engines.

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);
}

/** A whole page: `title` as the title and heading, then `body` (HTML the caller escaped), inside <main> when asked. */
export function htmlPage(title: string, body: string, style: string, options: { main?: boolean } = {}): string {
  const content = `<h1>${escapeHtml(title)}</h1>
${body}`;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex, nofollow">
<title>${escapeHtml(title)}</title>
<style>${style}</style>
</head>
<body>
${options.main ? `<main>\n${content}\n</main>` : content}
</body>
</html>
`;
}
