"""The Chainlit web chat: handlers (app), rendering (render), chat history (datalayer) and launching (launch)."""
