"""The data scientist of the virtual startup: an MCP server on stdio, written with the
official MCP Python SDK. Tools: `analyze_market` and `forecast_revenue`, both with
progress and log messages. The numbers are derived from the product's name, so a run is
deterministic; with STARTUP_USE_SAMPLING=1 the market summary is written by the host's
model through MCP sampling (relayed by Baton), falling back to a template."""

import random

from mcp.server.mcpserver import Context, MCPServer
from mcp_types import CallToolResult, SamplingMessage, TextContent

from common import USE_SAMPLING, progress, run_stdio_handshake, seed, work

LOGGER = "data-scientist"

server = MCPServer(
    "startup-data-scientist",
    instructions="The data scientist of the virtual startup: sizes markets and forecasts revenue.",
)


def text_result(text: str, structured: dict) -> CallToolResult:
    return CallToolResult(content=[TextContent(text=text)], structured_content=structured)


async def summarize(ctx: Context, product: str, facts: str, fallback: str) -> str:
    if not USE_SAMPLING:
        return fallback
    try:
        answer = await ctx.session.create_message(
            messages=[
                SamplingMessage(
                    role="user",
                    content=TextContent(
                        text=f"In two sentences, summarise this market analysis for {product}: {facts}"
                    ),
                )
            ],
            max_tokens=200,
            related_request_id=ctx.request_id,
        )
        content = answer.content
        if isinstance(content, TextContent) and content.text.strip():
            await ctx.info("Summary written by the host's model (sampling)", logger_name=LOGGER)
            return content.text.strip()
    except Exception as error:  # any refusal or missing capability: use the template
        await ctx.warning(f"Sampling unavailable ({error}); using the template", logger_name=LOGGER)
    return fallback


@server.tool()
async def analyze_market(
    ctx: Context,
    product: str,
    segments: list[str] | None = None,
) -> CallToolResult:
    """Sizes the market of a product, segment by segment, and names the strongest segment."""
    segments = segments or ["startups", "small businesses", "enterprises"]
    rng = random.Random(seed(product))
    total = len(segments) + 1
    await progress(ctx, 0, total, f"Pulling market data for {product}", LOGGER)
    await work(900)
    rows = []
    for i, segment in enumerate(segments):
        await work(700)
        companies = rng.randrange(5_000, 90_000)
        spend = rng.randrange(200, 2_400)
        growth = rng.randrange(4, 35)
        rows.append({"segment": segment, "companies": companies, "annual_spend_usd": spend,
                     "growth_pct": growth, "size_usd": companies * spend})
        await progress(ctx, i + 1, total,
                       f"Segment {segment}: {companies:,} companies, ${spend:,}/yr each, +{growth}%/yr",
                       LOGGER)
    tam = sum(r["size_usd"] for r in rows)
    best = max(rows, key=lambda r: r["size_usd"] * (100 + r["growth_pct"]))
    facts = "; ".join(f"{r['segment']} ${r['size_usd']:,} +{r['growth_pct']}%" for r in rows)
    fallback = (f"{product} addresses a ${tam / 1e6:,.0f}M market; the strongest segment is "
                f"{best['segment']} (+{best['growth_pct']}%/yr). Lead with it.")
    summary = await summarize(ctx, product, facts, fallback)
    await progress(ctx, total, total, "Market analysis written", LOGGER)
    return text_result(summary, {"product": product, "tam_usd": tam, "segments": rows,
                                 "focus": best["segment"], "summary": summary})


@server.tool()
async def forecast_revenue(ctx: Context, product: str, tam_usd: float) -> CallToolResult:
    """Forecasts the first year's revenue, quarter by quarter, from the market size."""
    rng = random.Random(seed(product) ^ 0x5EED)
    share = 0.0004
    quarters = []
    await progress(ctx, 0, 4, f"Forecasting revenue for {product} (TAM ${tam_usd / 1e6:,.0f}M)", LOGGER)
    for q in range(1, 5):
        await work(600)
        share *= 1.6 + rng.random() * 0.6
        revenue = round(tam_usd * share / 4)
        quarters.append({"quarter": f"Q{q}", "revenue_usd": revenue})
        await progress(ctx, q, 4, f"Q{q}: ${revenue:,} revenue", LOGGER)
    arr = quarters[-1]["revenue_usd"] * 4
    text = f"Year one: ${sum(q['revenue_usd'] for q in quarters):,} revenue, exit ARR ${arr:,}."
    return text_result(text, {"product": product, "quarters": quarters, "exit_arr_usd": arr})


if __name__ == "__main__":
    if USE_SAMPLING:
        # Sampling asks the host in the middle of the call: see run_stdio_handshake.
        run_stdio_handshake(server)
    else:
        server.run("stdio")
