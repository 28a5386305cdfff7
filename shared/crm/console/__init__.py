"""The marketer's console (docs/console.md): sessions and CSRF tokens (session), the pages' data (pages), their
charts drawn as SVG (charts) and the Jinja2 templates that render them (render, templates/)."""
