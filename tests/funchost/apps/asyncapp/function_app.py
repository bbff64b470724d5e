"""An async function with a $return queue output and the invocation context."""

import asyncio

import azure.functions as func

app = func.FunctionApp()

contexts: list[tuple[str, str]] = []


@app.function_name("shout")
@app.queue_trigger(arg_name="msg", queue_name="%ASYNC_INPUT_QUEUE%", connection="Storage")
@app.queue_output(arg_name="$return", queue_name="%ASYNC_OUTPUT_QUEUE%", connection="Storage")
async def shout_async(msg: func.QueueMessage, context: func.Context) -> str:
    await asyncio.sleep(0.01)
    contexts.append((context.function_name, context.invocation_id))
    return msg.get_body().decode().upper()
