"""Every relative link and `docs/...` path named in the README and docs/ points at a file of the repository."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def test_docs_exist_and_the_readme_links_the_architecture():
    assert (ROOT / "docs" / "architecture.md").is_file()
    assert "docs/architecture.md" in (ROOT / "README.md").read_text()


def test_relative_links_resolve():
    broken = []
    for page in PAGES:
        text = page.read_text()
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", text):  # markdown links, not URLs
            if not (page.parent / target).exists():
                broken.append(f"{page.relative_to(ROOT)} -> {target}")
        for target in re.findall(r"`(docs/[\w./-]+\.md)`", text):
            if not (ROOT / target).exists():
                broken.append(f"{page.relative_to(ROOT)} -> {target}")
    assert not broken, broken


TOPICS = {"recipes.md": "recipes", "checkpoints.md": "resume and checkpoints", "evaluation.md": "evaluation",
          "plugins.md": "plugins", "performance.md": "benchmarks", "inference.md": "using a trained model",
          "feature_cache.md": "frozen-feature cache"}


def test_topic_pages_exist_and_the_readme_and_architecture_link_them():
    readme, architecture = (ROOT / "README.md").read_text(), (ROOT / "docs" / "architecture.md").read_text()
    for page, topic in TOPICS.items():
        assert (ROOT / "docs" / page).is_file(), f"docs/{page} ({topic}) is missing"
        assert f"](docs/{page}" in readme, f"the README does not link docs/{page} ({topic})"
        assert f"]({page}" in architecture, f"docs/architecture.md does not link {page} ({topic})"
    assert "run.resume_from" in (ROOT / "docs" / "checkpoints.md").read_text()  # how to resume
